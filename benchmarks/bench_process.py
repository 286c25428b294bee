"""The whole kiosk process at a paced 15 fps: CPU (% of one core) and RSS, by source, screen and
state, with where the CPU goes (capture/decode, scene, gate, preprocess, inference, outputs).

Each case is a fresh process (a `Kiosk` wired as `mpox kiosk run` wires it, with its outputs),
measured for --seconds after --warmup: the process's CPU over that window in % of one core,
its RSS at the end and its peak. Per thread (/proc/self/task): the capture thread (reading and
decoding frames), the loop thread split by stage with per-thread CPU clocks around the calls it
makes (scene, gate, preprocess, inference, decide, outputs: status, events and the audit row),
the web server's threads, and native threads (OpenVINO's and OpenCV's workers).

Sources, all at 15 fps:
  demo            the bundled demo (edge/sources/demo.py; its prepared frames made before the window)
  file-WxH        a looping video file (MPEG-4) of demo visits, or of the empty room (idle)
  camera-WxH      a camera: pre-rendered demo visits (or the empty room) decoded from JPEG on each
                  read, as a USB camera's MJPEG stream is; a frame the kiosk skips is not decoded
States: idle (nobody in front: the empty room), consent (people come and go, nobody taps
"I agree"), screening (people come and go and are screened: consent off).
Screen on: the web pages served, with one viewer as the kiosk's screen: the event stream, and
the live picture unless the screen waits for "I agree" (the viewer's own CPU is not counted).

--tree runs every case once per source tree, alternating (e.g. a worktree of the commit
before a change and this one), so that before and after see the same machine load; ratios are
after / before. --command measures `mpox kiosk run` itself (its default: the demo) per tree.

    python benchmarks/bench_process.py [--seconds 20] [--warmup 5] [--cases demo/on/consent ...]
                                       [--tree DIR ...] [--command] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "mpox-bench-process"  # recorded frames and videos, kept between runs
FPS = 15.0
CASES = (
    "demo/on/consent", "demo/on/screening", "demo/off/screening",
    "file-640x480/on/idle", "file-640x480/on/screening", "file-640x480/off/screening", "file-1280x720/on/screening",
    "camera-640x480/on/idle", "camera-640x480/off/idle", "camera-640x480/on/consent", "camera-640x480/on/screening",
    "camera-640x480/off/screening",
    "camera-1280x720/on/idle", "camera-1280x720/off/idle", "camera-1280x720/on/consent", "camera-1280x720/on/screening",
)
VISIT_PICTURES = 3  # demo pictures in the recorded visits of the file and camera sources
EMPTY_S = 10.0  # seconds of empty room, looped, for idle
STAGES = ("scene", "gate", "preprocess", "inference", "decide", "outputs")


# --- frames for the file and camera sources (made once, shared by every tree) ---------------------

def frames_file(cache: Path, width: int, height: int, what: str) -> Path:
    """JPEG frames of `what` ("visits" or "empty") at width x height, 15 fps: an .npz."""
    path = cache / f"{what}-{width}x{height}.npz"
    if path.is_file():
        return path
    import cv2
    import numpy as np

    from edge.sources.demo import DemoSource
    from edge.visits import VisitCamera, plan_empty

    demo = DemoSource(width, height, fps=0)
    demo.open()
    jpegs = []
    if what == "visits":
        cameras = [demo.visit(n) for n in range(VISIT_PICTURES)]
    else:
        from dataclasses import replace

        plan = replace(plan_empty(np.random.default_rng(0), EMPTY_S), passer_by=False)
        cameras = [VisitCamera(plan, width, height, demo.box, FPS, demo.room)]
    for camera in cameras:
        n = int(camera.plan.duration * FPS)
        for k in range(n):
            ok, buf = cv2.imencode(".jpg", camera.frame(k / FPS), [cv2.IMWRITE_JPEG_QUALITY, camera.plan.jpeg])
            jpegs.append(buf.tobytes())
    ends = np.cumsum([len(j) for j in jpegs])
    np.savez(path, data=np.frombuffer(b"".join(jpegs), np.uint8), ends=ends)
    return path


def load_jpegs(path: Path) -> list[bytes]:
    import numpy as np

    with np.load(path) as z:
        data, ends = z["data"].tobytes(), z["ends"]
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def video_file(cache: Path, width: int, height: int, what: str) -> Path:
    path = cache / f"{what}-{width}x{height}.mp4"
    if path.is_file():
        return path
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    for jpeg in load_jpegs(frames_file(cache, width, height, what)):
        writer.write(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    writer.release()
    return path


# --- one case, in its own process ------------------------------------------------------------------

def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return out


def rss_mb() -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def camera_source(jpegs: list[bytes]):
    import cv2
    import numpy as np

    from edge.sources.base import Pacer, Source

    class Camera(Source):
        """A 15 fps camera sending JPEG (MJPEG): read() decodes, skip() does not."""

        name = "camera"

        def __init__(self) -> None:
            self.pacer, self.i = Pacer(FPS), 0

        def open(self) -> None:
            pass

        def _next(self) -> bytes:
            self.pacer.wait()
            self.i += 1
            return jpegs[(self.i - 1) % len(jpegs)]

        def read(self):
            return cv2.imdecode(np.frombuffer(self._next(), np.uint8), cv2.IMREAD_COLOR)

        def skip(self) -> bool:
            self._next()
            return True

    return Camera()


def run_case(case: str, seconds: float, warmup: float, cache: Path, port: int) -> dict:
    import edge.engine
    import edge.kiosk
    from edge.config import KioskConfig, WebConfig
    from edge.kiosk import Kiosk
    from edge.models import load_engine
    from edge.outputs import open_outputs

    source, screen, state = case.split("/")
    state_dir = cache / "state" / case.replace("/", "-")
    state_dir.mkdir(parents=True, exist_ok=True)
    web = WebConfig(enabled=screen == "on", port=port, consent=state != "screening")
    src, make_source = source_config(source, "empty" if state == "idle" else "visits", cache, state_dir)
    cfg = KioskConfig(kiosk_id="bench", state_dir=state_dir, source=src, web=web)
    cpu: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def timed(stage, fn):
        def wrapped(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[stage] += time.thread_time() - t
        return wrapped

    edge.kiosk.frame_quality = timed("gate", edge.kiosk.frame_quality)
    edge.kiosk.verdict = timed("gate", edge.kiosk.verdict)
    edge.engine.preprocess = timed("preprocess", edge.engine.preprocess)
    engine = load_engine(cfg)
    engine.infer = timed("inference", engine.infer)
    kiosk = Kiosk(cfg, engine=engine, make_source=make_source)
    kiosk.scene.observe = timed("scene", kiosk.scene.observe)
    kiosk.patience.observe = timed("gate", kiosk.patience.observe)
    kiosk.machine.observe = timed("decide", kiosk.machine.observe)
    kiosk.outputs.status = timed("outputs", kiosk.outputs.status)
    kiosk.outputs.event = timed("outputs", kiosk.outputs.event)
    open_outputs(cfg, kiosk)
    if screen == "on":  # the screen shows the live picture unless it waits for "I agree" (edge/web/static/kiosk.js)
        live = state == "screening" or source.startswith("file-")
        threading.Thread(target=watch_screen, args=(port, live), daemon=True).start()
    marks: dict = {}

    def sample(key):
        os_t = os.times()
        marks[key] = {"t": time.perf_counter(), "cpu": os_t.user + os_t.system, "loop": time.thread_time(),
                      "threads": thread_cpu(), "stages": dict(cpu), "frames": kiosk.status.frames,
                      "classified": kiosk.status.classified, "screenings": kiosk.status.screenings,
                      "skipped": getattr(kiosk.capture.stats, "skipped", 0),
                      "names": {t.native_id: t.name for t in threading.enumerate()}}

    class Clock:  # on the loop thread: samples at the window's start and end, then stops the kiosk
        def on_event(self, event) -> None:
            pass

        def on_status(self, status) -> None:
            now = time.perf_counter()
            if "start" not in marks and now - t0 >= warmup:
                sample("start")
            elif "start" in marks and "end" not in marks and now - marks["start"]["t"] >= seconds:
                sample("end")
                kiosk.stop()

    t0 = time.perf_counter()
    kiosk.outputs.subscribe(Clock())
    kiosk.run()
    a, b = marks["start"], marks["end"]
    wall = b["t"] - a["t"]
    stages = {k: b["stages"][k] - a["stages"][k] for k in STAGES}
    split = split_by_thread(a, b, stages)
    rss, peak = rss_mb()
    return {"case": case, "seconds": wall, "cpu_pct": 100 * (b["cpu"] - a["cpu"]) / wall, "rss_mb": rss, "rss_peak_mb": peak,
            "split_pct": {k: 100 * v / wall for k, v in split.items()},
            "frames": b["frames"] - a["frames"], "classified": b["classified"] - a["classified"],
            "screenings": b["screenings"] - a["screenings"], "state": kiosk.status.state.value,
            "skipped": b["skipped"] - a["skipped"]}


def source_config(source: str, what: str, cache: Path, state_dir: Path):
    """The SourceConfig of a case's source, and the camera to use instead of a device (or None)."""
    from edge.config import SourceConfig

    if source == "demo":
        prepare_demo(state_dir)
        return SourceConfig(kind="demo", fps=FPS), None
    w, h = (int(v) for v in source.split("-")[1].split("x"))
    if source.startswith("file-"):
        return SourceConfig(kind="file", target=str(video_file(cache, w, h, what)), fps=FPS, loop=True), None
    jpegs = load_jpegs(frames_file(cache, w, h, what))
    return SourceConfig(kind="device", target="0", width=w, height=h, fps=FPS), lambda: camera_source(jpegs)


def split_by_thread(a: dict, b: dict, stages: dict[str, float]) -> dict[str, float]:
    """CPU seconds between two samples: the capture thread, the loop's stages, the rest by thread."""
    loop_tid = threading.main_thread().native_id
    groups = {"capture/decode": 0.0, "web": 0.0, "native workers": 0.0, "other threads": 0.0}
    for tid, end in b["threads"].items():
        used = end - a["threads"].get(tid, 0.0)
        name = b["names"].get(tid) or a["names"].get(tid)
        if tid == loop_tid:
            continue
        if name is None:
            groups["native workers"] += used
        elif name.startswith("capture"):
            groups["capture/decode"] += used
        elif name.startswith(("web", "uvicorn")) or "web" in name.lower():
            groups["web"] += used
        else:
            groups["other threads"] += used
    loop = b["loop"] - a["loop"]
    return {"capture/decode": groups["capture/decode"], **stages, "loop other": loop - sum(stages.values()),
            "web": groups["web"], "native workers": groups["native workers"], "other threads": groups["other threads"]}


def prepare_demo(state_dir: Path) -> None:
    """The demo's frames made before the kiosk starts (a tree whose demo keeps them: its cycle played once)."""
    import inspect

    from edge.sources.demo import DemoSource

    if "cache_dir" not in inspect.signature(DemoSource).parameters:
        return  # the demo draws every frame: nothing to prepare
    demo = DemoSource(fps=0, cache_dir=state_dir)
    demo.open()
    for _ in demo.pictures:  # one visit each
        first = demo.visit_number
        demo.skip()
        while demo.visit_number == first:
            demo.skip()


def watch_screen(port: int, live: bool) -> None:
    """A kiosk screen's browser: the event stream and, when `live`, the live picture (the
    welcome screen shows none), read and dropped."""
    def read(path):
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    while r.read(65536):
                        pass
            except OSError:
                time.sleep(0.5)
    if live:
        threading.Thread(target=read, args=("/preview.mjpg",), daemon=True).start()
    read("/api/events")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- `mpox kiosk run` itself ---------------------------------------------------------------------

def run_command(tree: Path, seconds: float, warmup: float, cache: Path, cold: bool = False) -> dict:
    """`mpox kiosk run` of `tree` with its defaults (the demo; a tree with pages: on a free port,
    nobody tapping "I agree"), measured from /proc over the window; `cold`: a first start, with
    no demo frames prepared by an earlier run."""
    work = cache / f"run-{tree.name}"  # kept: a demo that keeps its frames plays them from the start, as on a restart
    work.mkdir(parents=True, exist_ok=True)
    if not cold:
        subprocess.run([sys.executable, __file__, "--prepare-demo", str(work / "kiosk-state")], check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    else:
        shutil.rmtree(work / "kiosk-state", ignore_errors=True)
    args = [sys.executable, "-c", "import sys; from edge.cli import main; sys.argv[0] = 'mpox'; main()", "kiosk", "run"]
    if (tree / "edge" / "web").is_dir():
        (work / "kiosk.yaml").write_text(f"web:\n  port: {free_port()}\n")
        args += ["--config", str(work / "kiosk.yaml")]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(args, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        time.sleep(warmup)
        c0, t0 = cpu(), time.perf_counter()
        time.sleep(seconds)
        c1, t1 = cpu(), time.perf_counter()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = int(status.split("VmRSS:")[1].split()[0]) / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"case": "mpox kiosk run" + (" (first start)" if cold else ""), "cpu_pct": 100 * (c1 - c0) / (t1 - t0), "rss_mb": rss, "seconds": t1 - t0}


# --- the driver ----------------------------------------------------------------------------------

def child(tree: Path, case: str, seconds: float, warmup: float, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--child", case, "--seconds", str(seconds), "--warmup", str(warmup),
                          "--cache", str(cache)], env=env, capture_output=True, text=True, cwd=tree)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode or not line:
        raise RuntimeError(f"{case} on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per case [60]")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after start before the window [5]")
    ap.add_argument("--cases", nargs="+", default=list(CASES), help=f"[all: {' '.join(CASES)}]")
    ap.add_argument("--tree", type=Path, nargs="+", default=[ROOT], help="source trees to compare, alternating [this one]")
    ap.add_argument("--command", action="store_true", help="measure `mpox kiosk run` per tree instead of the cases")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--cold", action="store_true", help="with --command: a first start (no demo frames kept from a run before)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--prepare-demo", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="end with one JSON line of every result")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.prepare_demo:
        prepare_demo(args.prepare_demo)
        return
    if args.child:
        print(json.dumps(run_case(args.child, args.seconds, args.warmup, args.cache, free_port())))
        return
    from machine import cpu_model

    print(f"{cpu_model()}, {os.cpu_count()} cores; {args.seconds:g} s per case after {args.warmup:g} s; trees: "
          + ", ".join(str(t) for t in args.tree))
    results = []
    for case in (["mpox kiosk run"] if args.command else args.cases):
        row = []
        for tree in args.tree:
            r = run_command(tree.resolve(), args.seconds, args.warmup, args.cache, args.cold) if args.command else \
                child(tree.resolve(), case, args.seconds, args.warmup, args.cache)
            r["tree"] = str(tree)
            row.append(r)
            results.append(r)
        figures = "  |  ".join(f"{r['cpu_pct']:5.1f}% {r['rss_mb']:4.0f} MB" for r in row)
        ratio = "  CPU ratio to the first tree: " + ", ".join(f"{r['cpu_pct'] / row[0]['cpu_pct']:.2f}" for r in row[1:]) \
            if len(row) > 1 and row[0]["cpu_pct"] else ""
        print(f"{case:<30} {figures}{ratio}", flush=True)
        for r in row:
            if "split_pct" in r:
                print("    " + ", ".join(f"{k} {v:.2f}" for k, v in r["split_pct"].items() if v >= 0.005)
                      + f"; {r['frames']} frames to the loop, {r['skipped']} skipped by the camera, {r['classified']} classified, "
                        f"{r['screenings']} screenings, ends {r['state']}", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
