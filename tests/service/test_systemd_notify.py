"""The kiosk speaks systemd's notify protocol to a real unix datagram socket: READY only after
the first frame, WATCHDOG only while frames are processed (a stalled camera or a stuck
inference stops it within WatchdogSec), STATUS lines a technician can read, STOPPING at the end."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from edge.config import load_config
from edge.decision import State
from edge.events import CameraLost, KioskStatus
from edge.kiosk import Kiosk
from edge.models import load_engine
from edge.outputs import open_outputs
from edge.outputs import systemd as notify_module
from edge.outputs.systemd import SystemdNotify, watchdog_seconds
from edge.sources.demo import DemoSource

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_S = 2.0
STATUS = re.compile(r"^(?P<state>idle|guiding|assessing|result); camera (?P<camera>ok|unavailable: .+?); "
                    r"(?P<fps>\d+\.\d) fps; (?P<screenings>\d+) screenings; last problem: (?P<problem>.+)$")


class NotifyListener:
    """What systemd would receive: each datagram with the time it arrived, split into its
    assignments (NAME=value per line)."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(dir="/tmp")  # a unix socket path must stay short
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, test, after: float = 0.0, timeout: float = 60.0) -> tuple[float, dict[str, str]]:
        """The first message (time, fields) received after `after` that passes `test`, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in list(self.messages):
                if t > after and test(m):
                    return t, m
            time.sleep(0.02)
        raise AssertionError(f"no such notify message in {timeout:g} s; got {[m for _, m in self.messages]}")

    def wait_count(self, key: str, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.times(key)) < n:
            assert time.monotonic() < deadline, f"fewer than {n} {key} messages in {timeout:g} s"
            time.sleep(0.02)

    def times(self, key: str) -> list[float]:
        return [t for t, m in list(self.messages) if key in m]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.dir.cleanup()


@pytest.fixture
def listener(monkeypatch):
    found = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", found.path)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1e6)))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield found
    found.close()


def config(tmp_path, fps=75):
    p = tmp_path / "kiosk.yaml"
    p.write_text(f"kiosk_id: test-1\nstate_dir: state\nsource:\n  kind: demo\n  fps: {fps}\n  read_timeout_s: 0.5\n"
                 f"  reconnect_min_s: 0.2\n  reconnect_max_s: 0.5\ndecision:\n  frames: 5\n  best_frames: 4\n"
                 f"  result_hold_s: 0.5\n  leave_after_s: 0.2\npresence:\n  learn_s: 0.2\nweb:\n  enabled: false\n")
    return p


class GatedSource(DemoSource):
    """The demo camera, whose reads block while `flowing` is clear: a camera that has not
    delivered yet, or one that stalls (as picamera2's capture_array can)."""

    def __init__(self, flowing: threading.Event, blocked: threading.Event, **kw) -> None:
        super().__init__(**kw)
        self.flowing, self.blocked = flowing, blocked

    def read(self):
        if not self.flowing.is_set():
            self.blocked.set()
            self.flowing.wait()
        return super().read()


class HangingEngine:
    """The real OpenVINO engine, whose inference blocks once `hang` is set (a stuck driver)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.hang, self.hung, self.release = threading.Event(), threading.Event(), threading.Event()
        self.hung_at = 0.0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def classify_frame(self, *args, **kw):
        if self.hang.is_set() and not self.release.is_set():
            self.hung_at = time.monotonic()
            self.hung.set()
            self.release.wait()
        return self.engine.classify_frame(*args, **kw)


class RunningKiosk:
    """A real Kiosk with its configured outputs (open_outputs, as `mpox kiosk run` does), built
    and run on a thread of its own (its audit log belongs to the loop's thread)."""

    def __init__(self, cfg, **kw) -> None:
        self.built = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(cfg, kw), daemon=True)
        self.thread.start()
        assert self.built.wait(60), "the kiosk did not start"

    def _run(self, cfg, kw) -> None:
        self.kiosk = Kiosk(cfg, **kw)
        open_outputs(cfg, self.kiosk)
        self.built.set()
        self.kiosk.run()

    def stop(self) -> None:
        self.kiosk.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_ready_after_the_first_frame_then_pings_and_status_and_a_stalled_camera_stops_the_pings(tmp_path, listener, monkeypatch):
    monkeypatch.setattr(notify_module, "STATUS_EVERY_S", 0.5)
    cfg = load_config(config(tmp_path))
    flowing, blocked = threading.Event(), threading.Event()  # the camera delivers nothing at first
    running = RunningKiosk(cfg, make_source=lambda: GatedSource(flowing, blocked, fps=75, box=cfg.quality.box))
    try:
        blocked.wait(30)
        time.sleep(1.0)  # model loaded, loop running, camera silent (and reopened): not ready
        assert running.kiosk.status.frames == 0 and listener.messages == []
        flowing.set()
        ready_at, ready = listener.wait_for(lambda m: "READY" in m)
        assert ready["READY"] == "1" and running.kiosk.status.frames >= 1
        first = STATUS.match(ready["STATUS"])
        assert first and first["state"] == "idle" and first["screenings"] == "0", ready["STATUS"]
        _, ok = listener.wait_for(lambda m: "STATUS" in m, after=ready_at)  # the camera's health may follow a moment later
        line = STATUS.match(ok["STATUS"])
        assert line and line["camera"] == "ok" and line["problem"] == "none", ok["STATUS"]
        listener.wait_count("WATCHDOG", 3)
        assert all(m["WATCHDOG"] == "1" for _, m in listener.messages if "WATCHDOG" in m)

        blocked.clear()
        flowing.clear()  # the camera stalls; the loop runs on without frames
        blocked.wait(10)
        stalled_at = time.monotonic()
        _, lost = listener.wait_for(lambda m: "camera lost" in m.get("STATUS", ""), after=stalled_at)
        line = STATUS.match(lost["STATUS"])
        assert line and line["camera"].startswith("unavailable: no frame for 0.5 s"), lost["STATUS"]
        assert "demo: no frame for 0.5 s" in line["problem"]
        time.sleep(max(0.0, stalled_at + 2 * WATCHDOG_S - time.monotonic()))
        assert running.thread.is_alive() and listener.times("STATUS")[-1] > stalled_at + WATCHDOG_S  # the loop runs...
        assert [t for t in listener.times("WATCHDOG") if t > stalled_at + WATCHDOG_S] == []  # ...but feeds no watchdog

        flowing.set()  # the camera comes back: pings again
        back_at, _ = listener.wait_for(lambda m: "; camera ok; " in m.get("STATUS", ""), after=stalled_at)
        listener.wait_for(lambda m: "WATCHDOG" in m, after=back_at)
    finally:
        flowing.set()
        running.stop()
    _, last = listener.messages[-1]
    assert last["STOPPING"] == "1" and last["STATUS"].startswith("stopping after")


def test_a_stuck_inference_stops_the_pings(tmp_path, listener):
    cfg = load_config(config(tmp_path))
    engine = HangingEngine(load_engine(cfg))
    running = RunningKiosk(cfg, engine=engine)
    try:
        listener.wait_for(lambda m: "READY" in m)
        listener.wait_count("WATCHDOG", 2)
        engine.hang.set()  # the next frame someone shows never comes back from the model
        assert engine.hung.wait(60), "nobody was classified"
        time.sleep(max(0.0, engine.hung_at + 2 * WATCHDOG_S - time.monotonic()))
        assert running.thread.is_alive() and running.kiosk.status.frames > 0
        assert [t for t in listener.times("WATCHDOG") if t > engine.hung_at + WATCHDOG_S] == []
    finally:
        engine.release.set()
        running.stop()


def test_the_kiosk_command_notifies_systemd_from_start_to_stop(tmp_path, listener):
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "kiosk", "run", "--no-view", "--config", str(config(tmp_path))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        listener.wait_count("WATCHDOG", 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    kinds = [next(iter(m)) for _, m in listener.messages]
    assert kinds[0] == "READY" and kinds[-1] == "STOPPING" and kinds.count("WATCHDOG") >= 2
    assert f"systemd notify on; watchdog every {WATCHDOG_S / 2:g} s" in err


def status(frames: int, camera_ok: bool = True, problem: str = "") -> KioskStatus:
    return KioskStatus(state=State.IDLE, camera_ok=camera_ok, camera_problem=problem, fps=15.0, frames=frames)


class Recorder:
    """Keeps what the output sends (to compare with the clock it is given) and sends it on."""

    def __init__(self, notifier) -> None:
        self.notifier, self.sent = notifier, []

    def notify(self, message: str) -> None:
        self.sent.append(message)
        self.notifier.notify(message)


def test_pings_are_spaced_by_half_the_watchdog_and_need_new_frames(listener):
    clock = [100.0]
    out = SystemdNotify.from_environment()
    out.clock = lambda: clock[0]  # a clock the test moves
    out.notifier = recorder = Recorder(out.notifier)

    def tick(dt: float, st: KioskStatus) -> list[str]:
        clock[0] += dt
        before = len(recorder.sent)
        out.on_status(st)
        return recorder.sent[before:]

    idle = "STATUS=idle; camera ok; 15.0 fps; 0 screenings; last problem: none"
    assert tick(0, status(0)) == [] and tick(0.1, status(0)) == []  # loaded, no frame yet
    # READY=1 restates WatchdogSec (after a restart on a new model it puts back the restart's allowance)
    assert tick(0.1, status(1)) == [f"READY=1\nWATCHDOG_USEC={int(WATCHDOG_S * 1e6)}\n" + idle]
    assert tick(0.5, status(20)) == []  # too soon after READY
    assert tick(0.6, status(40)) == ["WATCHDOG=1"]  # WatchdogSec/2 = 1 s since READY, frames moved
    assert tick(1.5, status(40)) == []  # frames did not move: no ping, however long
    assert tick(10, status(40)) == [idle]  # ... while the status goes on
    assert tick(0.1, status(41)) == ["WATCHDOG=1"]
    out.on_event(CameraLost(0.0, "video0: camera error: bad\nREADY=1 \u00e9"))
    [lost] = tick(0.1, status(41, camera_ok=False, problem="stalled\nWATCHDOG=1"))  # at once: the camera went
    assert lost.startswith("STATUS=idle; camera unavailable: stalled WATCHDOG=1; 15.0 fps; 0 screenings; last problem: ")
    assert lost.endswith(" camera lost: video0: camera error: bad READY=1 ?")  # one line, whatever a camera says
    out.close()
    assert recorder.sent[-1] == "STOPPING=1\nSTATUS=stopping"
    listener.wait_for(lambda m: "STOPPING" in m, timeout=5)
    assert [m for _, m in listener.messages] == [dict(line.split("=", 1) for line in sent.splitlines())
                                                for sent in recorder.sent]


def test_watchdog_settings_from_the_environment():
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # meant for another process
    assert watchdog_seconds({}) is None and watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None


def test_an_unreachable_notify_socket_is_one_line_and_no_output(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert SystemdNotify.from_environment() is None
    assert [r.message for r in caplog.records if r.levelname == "ERROR"][0].startswith("cannot reach systemd at NOTIFY_SOCKET=")
