"""After a swap the kiosk judges the new model and rolls it back by itself: when it does not
load, when the kiosk is not healthy on it within rollout.trial_s, or when the kiosk keeps
dying on it. A healthy model is confirmed; a running kiosk moves to a new model when idle."""

import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.models import engine_for_start
from edge.modelstore import CONFIRMED, REJECTED, ModelStore, RolloutError
from edge.outputs import open_outputs
from edge.outputs.rollout import EXIT_RESTART, RolloutWatch
from edge.rollout import install_bundle

from .conftest import ROOT, cli, kiosk_yaml, links, process_env


def installed(cfg, bundle, confirm=True):
    result = install_bundle(bundle, cfg)
    if confirm:
        ModelStore.of(cfg).confirm(result.folder)
    return result.folder


class KioskProcess:
    """`mpox kiosk run` as the service runs it; its log lines read as they come."""

    def __init__(self, config, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "kiosk", "run", "--no-view", "--config", str(config)],
                                     env=process_env(env), cwd=ROOT, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stderr], daemon=True).start()

    def wait_for(self, text, timeout=60.0):
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout:g} s; seen:\n" + "".join(self.seen[-30:])) from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def test_a_healthy_new_model_is_confirmed(kiosk, bundles):
    path, cfg = kiosk
    folder = installed(cfg, bundles["v2"], confirm=False)
    k = Kiosk(cfg, engine=engine_for_start(cfg))
    watch = next(o for o in open_outputs(cfg, k) if isinstance(o, RolloutWatch))
    assert watch.trial and not (folder / CONFIRMED).exists()
    k.run(max_frames=cfg.rollout.trial_frames + 5)
    assert (folder / CONFIRMED).exists() and not watch.trial and not watch.restart
    assert (folder / "STARTS").read_text() == "1"


def test_a_model_that_fails_its_checks_on_the_kiosk_is_rolled_back_at_start(kiosk, bundles):
    path, cfg = kiosk
    good = installed(cfg, bundles["v2"])
    bad = installed(cfg, bundles["v3"], confirm=False)
    with open(bad / "fast-mpoxnet.bin", "r+b") as f:  # damaged on the kiosk's disk after the install
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0x01]))
    engine = engine_for_start(cfg)
    assert engine.info.version == "2.2.0-test" and links(cfg.state_dir)["current"] == good.name
    assert "does not load" in (bad / REJECTED).read_text() and "checksum" in (bad / REJECTED).read_text()
    # the fleet announcing it again does not bring it back by itself; a person can
    with pytest.raises(RolloutError, match="was rolled back on this kiosk .* --force"):
        install_bundle(bundles["v3"], cfg)
    assert install_bundle(bundles["v3"], cfg, force=True).folder == bad and not (bad / REJECTED).exists()


def test_an_unhealthy_kiosk_rolls_the_new_model_back_and_restarts_on_the_old(tmp_path, authority, bundles):
    """The camera delivers nothing after the swap: within trial_s the kiosk rolls back, logs one
    line and starts again on the previous model, without a person or a service manager."""
    path = kiosk_yaml(tmp_path, authority.public, "  trial_s: 1\n", source="  kind: folder\n  target: no-such-folder\n")
    cfg = load_config(path)
    good = installed(cfg, bundles["v2"])
    bad = installed(cfg, bundles["v3"], confirm=False)
    kiosk = KioskProcess(path)
    try:
        kiosk.wait_for("model fast-mpoxnet 3.0.0-test on CPU")
        line = kiosk.wait_for("rolled back to")
        assert f"model {bad.name} rolled back to {good.name}: 0 of 20 frames processed in the first 1 s" in line
        kiosk.wait_for("model fast-mpoxnet 2.2.0-test on CPU")  # the same process, started again
        kiosk.wait_for("camera unavailable")
    finally:
        code = kiosk.stop()
    assert code == 0
    assert links(cfg.state_dir)["current"] == good.name and (bad / REJECTED).exists()
    assert sum("rolled back" in line for line in kiosk.seen) == 1


def test_a_model_the_kiosk_keeps_dying_on_is_rolled_back(tmp_path, authority, bundles):
    """Killed before it is confirmed (a crash, a watchdog kill, a power cut) trial_starts times:
    the next start rolls it back before loading it."""
    path = kiosk_yaml(tmp_path, authority.public, "  trial_starts: 2\n  trial_frames: 1000000\n")
    cfg = load_config(path)
    good = installed(cfg, bundles["v2"])
    bad = installed(cfg, bundles["v3"], confirm=False)
    for start in (1, 2):
        kiosk = KioskProcess(path)
        kiosk.wait_for(f"on trial (start {start} of 2)")
        kiosk.wait_for("delivering frames")
        assert kiosk.stop(signal.SIGKILL) == -signal.SIGKILL
    kiosk = KioskProcess(path)
    try:
        assert "started 2 times on it without it becoming healthy" in kiosk.wait_for("rolled back to")
        kiosk.wait_for("model fast-mpoxnet 2.2.0-test on CPU")
        kiosk.wait_for("delivering frames")
    finally:
        assert kiosk.stop() == 0
    assert links(cfg.state_dir)["current"] == good.name and (bad / REJECTED).exists()


def test_a_running_kiosk_moves_to_a_newly_installed_model_between_screenings(kiosk, bundles):
    path, cfg = kiosk
    running: dict = {}

    def run():  # the kiosk lives on its own thread (its audit database belongs to that thread)
        k = running["kiosk"] = Kiosk(cfg, engine=engine_for_start(cfg))
        running["watch"] = next(o for o in open_outputs(cfg, k) if isinstance(o, RolloutWatch))
        running["started"].set()
        k.run()

    running["started"] = threading.Event()
    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert running["started"].wait(60) and running["kiosk"].model.version == "2.1.1"
        install_bundle(bundles["v2"], cfg)
        runner.join(timeout=60)
        assert not runner.is_alive() and running["watch"].restart
    finally:
        if "kiosk" in running:
            running["kiosk"].stop()
        runner.join()
    assert Kiosk(cfg, engine=engine_for_start(cfg)).model.version == "2.2.0-test"


def test_rollback_by_hand(kiosk, bundles):
    path, cfg = kiosk
    v2 = installed(cfg, bundles["v2"])
    installed(cfg, bundles["v3"])
    result = cli(["models", "rollback", "--config", str(path)])
    assert result.exit_code == 0 and f"now runs {v2.name}" in result.output
    result = cli(["models", "rollback", "--config", str(path)])
    assert result.exit_code == 0 and "packaged model" in result.output
    result = cli(["models", "rollback", "--config", str(path)])
    assert result.exit_code == 1 and "no installed model" in result.output
    assert engine_for_start(cfg).info.version == "2.1.1"


STUCK_KIOSK = """
import sys, threading
import edge.outputs.rollout
from edge.config import load_config
from edge.kiosk import Kiosk
from edge.outputs import open_outputs
from edge.models import engine_for_start

edge.outputs.rollout.STOP_GRACE_S = 1.0
cfg = load_config(sys.argv[1])
k = Kiosk(cfg, engine=engine_for_start(cfg))
open_outputs(cfg, k)
process = k.process
def stuck(frame):  # the loop hangs on the tenth frame, as inside a model that never returns
    if k.status.frames >= 9:
        threading.Event().wait()
    return process(frame)
k.process = stuck
k.run()
"""


def test_a_kiosk_stuck_on_a_new_model_rolls_it_back_and_exits_for_a_restart(tmp_path, authority, bundles):
    path = kiosk_yaml(tmp_path, authority.public, "  trial_s: 2\n")
    cfg = load_config(path)
    good = installed(cfg, bundles["v2"])
    bad = installed(cfg, bundles["v3"], confirm=False)
    result = subprocess.run([sys.executable, "-c", STUCK_KIOSK, str(path)], env=process_env(), cwd=ROOT, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == EXIT_RESTART, result.stderr[-2000:]
    assert f"model {bad.name} rolled back to {good.name}: 9 of 20 frames processed" in result.stderr
    assert "did not stop" in result.stderr
    assert links(cfg.state_dir)["current"] == good.name
    assert engine_for_start(cfg).info.version == "2.2.0-test"  # what systemd's restart starts on


def notifications(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """The next notify datagram as systemd reads it: the sender's PID (SCM_CREDENTIALS, which the
    kernel fills in: what NotifyAccess=main compares with MainPID) and its assignments."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    pid = next(struct.unpack("3i", d)[0] for level, kind, d in ancillary if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
    return pid, dict(line.split("=", 1) for line in data.decode().splitlines())


def test_under_systemd_a_new_model_restarts_the_kiosk_in_the_same_process(kiosk, bundles):
    """Under systemd the kiosk starts again on a new model by exec'ing itself: the same PID says
    RELOADING=1 and then READY=1 on the new model, and never exits, so systemd counts no start
    (StartLimitBurst=) however often models change. It still stops cleanly on SIGTERM."""
    path, cfg = kiosk
    with tempfile.TemporaryDirectory(dir="/tmp") as folder, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(Path(folder) / "notify"))
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.settimeout(60)
        kiosk_process = KioskProcess(path, {"NOTIFY_SOCKET": str(Path(folder) / "notify"), "WATCHDOG_USEC": "30000000"})
        pid = kiosk_process.proc.pid
        heard: list[tuple[int, dict[str, str]]] = []

        def until(key: str) -> dict[str, str]:
            while True:
                heard.append(notifications(notify))
                if key in heard[-1][1]:
                    return heard[-1][1]

        try:
            until("READY")
            for bundle, version in ((bundles["v2"], "2.2.0-test"), (bundles["v3"], "3.0.0-test")):
                install_bundle(bundle, cfg)
                reloading = until("RELOADING")
                assert reloading["WATCHDOG_USEC"] == "120000000"  # room for the new start, then put back:
                assert until("READY")["WATCHDOG_USEC"] == "30000000"
                kiosk_process.wait_for(f"model fast-mpoxnet {version} on CPU")
                assert kiosk_process.proc.poll() is None
            assert kiosk_process.stop() == 0
            until("STOPPING")
        finally:
            if kiosk_process.proc.poll() is None:
                kiosk_process.proc.kill()
    assert {sender for sender, _ in heard} == {pid}  # every message from the one MainPID
    kinds = [next(iter(m)) for _, m in heard if {"READY", "RELOADING", "STOPPING"} & set(m)]
    assert kinds == ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"]
