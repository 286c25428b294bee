"""The whole kiosk loop, no screen, on a synthetic 1280x720 source that runs as fast as it can.

The source replays the demo's pictures at 1280x720 in scripted visits (mostly an empty scene,
then a lesion approaching, held, taken away; edge/visits.py), pre-rendered so that making
frames costs nothing. The real Kiosk runs on it: capture thread, bounded queue, quality gate, native
preprocessing, OpenVINO, state machine, SQLite audit log. Decision and presence timings are
shortened so that a visit of ~1,800 frames (under two seconds here) completes a screening.

CPU time per frame is split by stage with per-thread CPU clocks around each stage of the
loop thread; "other threads" is the rest of the process (capture thread, OpenVINO workers).
RSS is sampled every 1,000 frames.

    python benchmarks/bench_pipeline.py [--frames 100000] [--model models/fast-mpoxnet-int8.xml] [--size 640x480] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from machine import cpu_model

import edge.kiosk
from edge import preprocess
from edge.config import DecisionConfig, KioskConfig, ModelConfig, PresenceConfig, StoreConfig
from edge.kiosk import Kiosk
from edge.sources.base import Source
from edge.sources.demo import DemoSource

WIDTH, HEIGHT = 1280, 720
# Frames of each phase of one visit, and how many distinct pre-rendered frames stand for it.
VISIT = (("empty", 1000, 1), ("approach", 100, 2), ("hold", 600, 2), ("leave", 100, 2))
QUEUE_SIZE = 4


class SyntheticSource(Source):
    """Scripted visits of the demo pictures at 1280x720, replayed as fast as the loop takes them.

    A source faster than the loop would only spin the capture thread on dropped frames; a
    camera delivers at its own rate instead. So read() waits for a free slot, which the
    benchmark releases each time the loop takes a frame: the source keeps the queue full
    without burning a core, and the measured rate is the loop's own."""

    name = "synthetic"

    def __init__(self, pictures: int = 2) -> None:
        """Visits of the first `pictures` demo pictures (edge/visits.py, as the demo source
        shows them): few, so that the pre-rendered frames (counted in the RSS) stay small."""
        demo = DemoSource(WIDTH, HEIGHT, fps=0)
        demo.open()
        self.visits: list[list[np.ndarray]] = []  # per visit, one entry per frame, pointing at few arrays
        for n in range(min(pictures, len(demo.pictures))):
            camera = demo.visit(n)
            starts = {"empty": 0.0, "approach": camera.plan.empty_s, "hold": camera.hold_start(),
                      "leave": camera.hold_start() + camera.plan.hold_s}
            spans = {"empty": camera.plan.empty_s, "approach": camera.plan.approach_s, "hold": camera.plan.hold_s,
                     "leave": camera.plan.leave_s}
            script = []
            for name, frames, distinct in VISIT:
                rendered = [camera.frame(starts[name] + spans[name] * (i + 0.5) / distinct) for i in range(distinct)]
                script += [rendered[i * distinct // frames] for i in range(frames)]
            self.visits.append(script)
        self.megabytes = sum({id(f): f.nbytes for v in self.visits for f in v}.values()) / 2**20
        self.index = 0
        self.slots = threading.Semaphore(QUEUE_SIZE)

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        if not self.slots.acquire(timeout=0.1):
            return None
        visit, i = divmod(self.index, len(self.visits[0]))
        self.index += 1
        return self.visits[visit % len(self.visits)][i]


def paced_kiosk(cfg: KioskConfig, source: SyntheticSource) -> Kiosk:
    """A Kiosk on `source` whose loop frees one of the source's slots per frame it takes."""
    kiosk = Kiosk(cfg, make_source=lambda: source)
    take = kiosk.capture.get

    def get_and_free_a_slot(timeout):
        frame = take(timeout)
        if frame is not None:
            source.slots.release()
        return frame

    kiosk.capture.get = get_and_free_a_slot
    return kiosk


class StageClock:
    """Thread CPU time and calls per stage, by wrapping the callables the loop calls."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[stage] += time.thread_time() - t
                self.calls[stage] += 1
        return timed


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20




def run(frames: int, model: Path | None) -> dict:
    state = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    cfg = KioskConfig(kiosk_id="bench", state_dir=state, queue_size=QUEUE_SIZE,
                      model=ModelConfig(path=model) if model else ModelConfig(),
                      decision=DecisionConfig(result_hold_s=0.3, leave_after_s=0.3, settle_s=0.02),
                      presence=PresenceConfig(learn_s=0.1, idle_fps=0),  # every frame: visits play fast-forward
                      store=StoreConfig(keep_best_frame=False))
    source = SyntheticSource()
    kiosk = paced_kiosk(cfg, source)
    clock = StageClock()
    edge.kiosk.frame_quality = clock.wrap("quality", edge.kiosk.frame_quality)
    kiosk.scene.observe = clock.wrap("scene", kiosk.scene.observe)
    kiosk.engine.classify_frame = clock.wrap("preprocess+infer", kiosk.engine.classify_frame)
    kiosk.machine.observe = clock.wrap("decide", kiosk.machine.observe)
    kiosk.store.record = clock.wrap("record", kiosk.store.record)  # the audit output calls it
    warmup = 1000
    marks: dict[str, float] = {}
    rss: list[float] = []

    class Marks:
        """An output that samples the counters after the warm-up, and RSS every 1000 frames."""

        def on_event(self, event) -> None:
            pass

        def on_status(self, status) -> None:
            on_status(status)

    def on_status(status) -> None:
        if status.frames == warmup and "t" not in marks:
            os_t = os.times()
            marks.update(t=time.perf_counter(), cpu=os_t.user + os_t.system, loop_cpu=time.thread_time(),
                         dropped=status.dropped, classified=status.classified, screenings=status.screenings)
            marks.update({f"stage_{k}": v for k, v in clock.cpu.items()})
        if status.frames % 1000 == 0 and (not rss or status.frames != rss[-1][0]):
            rss.append((status.frames, rss_mb()))

    t0 = time.perf_counter()
    kiosk.outputs.subscribe(Marks())
    status = kiosk.run(max_frames=warmup + frames)
    wall = time.perf_counter() - marks["t"]
    os_t = os.times()
    cpu = os_t.user + os_t.system - marks["cpu"]
    loop_cpu = time.thread_time() - marks["loop_cpu"]
    n = status.frames - warmup
    stages = {k: 1000 * (v - marks.get(f"stage_{k}", 0.0)) / n for k, v in clock.cpu.items()}
    per_call = {k: 1000 * v / clock.calls[k] for k, v in clock.cpu.items()}
    stages["loop other"] = 1000 * loop_cpu / n - sum(stages.values())
    stages["other threads"] = 1000 * (cpu - loop_cpu) / n
    samples = [mb for f, mb in rss if f >= warmup]
    return {
        "frames": n, "seconds": wall, "fps": n / wall, "cpu_ms_per_frame": 1000 * cpu / n,
        "cpu_ms_per_frame_by_stage": stages, "cpu_ms_per_call": per_call,
        "classified": status.classified - marks["classified"], "screenings": status.screenings - marks["screenings"],
        "dropped": status.dropped - marks["dropped"], "outages": status.outages,
        "rss_mb_start": samples[0], "rss_mb_end": samples[-1], "rss_mb_max": max(samples),
        "setup_s": marks["t"] - t0, "source_frames_mb": source.megabytes,
        "model": str(cfg.model.path.name), "precision": kiosk.engine.precision, "preprocess": preprocess.BACKEND,
        "cpu": cpu_model(), "cores": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--model", type=Path, help="IR to run (default: the kiosk's default model)")
    ap.add_argument("--size", default="1280x720", help="frame size WxH [1280x720]")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = ap.parse_args()
    global WIDTH, HEIGHT
    WIDTH, HEIGHT = map(int, args.size.lower().split("x"))
    r = run(args.frames, args.model)
    print(f"{r['cpu']}, {r['cores']} cores; model {r['model']} ({r['precision']}); preprocessing {r['preprocess']}")
    print(f"{r['frames']} frames of {WIDTH}x{HEIGHT} in {r['seconds']:.1f} s: {r['fps']:.0f} frames/s; "
          f"{r['classified']} classified, {r['screenings']} screenings, {r['dropped']} dropped by the capture queue")
    print(f"CPU {r['cpu_ms_per_frame']:.3f} ms/frame:")
    for stage, ms in r["cpu_ms_per_frame_by_stage"].items():
        call = f" ({r['cpu_ms_per_call'][stage]:.3f} ms per call)" if stage in r["cpu_ms_per_call"] else ""
        print(f"  {stage:<18} {ms:.3f} ms/frame{call}")
    print(f"RSS {r['rss_mb_start']:.0f} MB after warm-up -> {r['rss_mb_end']:.0f} MB at the end (max {r['rss_mb_max']:.0f}); "
          f"{r['source_frames_mb']:.0f} MB of it are the synthetic source's pre-rendered frames")
    if args.json:
        print(json.dumps({"size": f"{WIDTH}x{HEIGHT}", **{k: r[k] for k in ("fps", "cpu_ms_per_frame", "rss_mb_start", "rss_mb_end", "rss_mb_max",
                                            "cpu_ms_per_frame_by_stage", "cpu_ms_per_call", "classified", "screenings", "dropped",
                                            "source_frames_mb", "precision", "cores")}}))


if __name__ == "__main__":
    main()
