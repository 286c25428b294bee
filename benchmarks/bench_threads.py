"""Inference threads at the kiosk's pace: the whole process's CPU and the latency per classified
frame, with OpenVINO's inference on one thread (the kiosk's default, model.threads 1) against
OpenVINO's own choice (model.threads 0: every core), for each shipped float model.

A frame is classified as the loop does it (edge.engine.Engine.classify_frame: the region
cropped, resized and normalised, then inferred) 15 times a second, as while someone is being
screened. CPU is the process's (user + system, every thread: idle pool threads that spin
between frames count), so it is what a Pi's power and heat see, not only the caller's time.
Each (model, threads) runs in its own process, alternating for --rounds rounds (a noisy
machine slows them alike); medians over rounds, ratios one thread / OpenVINO's choice.

    python benchmarks/bench_threads.py [--rounds 3] [--frames 150] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("fast-mpoxnet", "efficientnet-lite0")
THREADS = (1, 0)  # model.threads: one, and OpenVINO's choice
FPS = 15.0
FRAME = (720, 1280)  # a 1280x720 camera frame, its region a square in the middle
REGION = (390, 110, 500, 500)


def worker(model: str, threads: int, frames: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from edge.config import ModelConfig
    from edge.engine import Engine
    from edge.models import compile_settings

    engine = Engine(ROOT / "models" / f"{model}.xml", "CPU", compile_settings(ModelConfig(threads=threads)))  # as the kiosk compiles it
    frame = np.random.default_rng(0).integers(0, 256, (*FRAME, 3), dtype=np.uint8)
    for _ in range(20):
        engine.classify_frame(frame, REGION)
    latency, period = [], 1 / FPS
    start, cpu0 = time.perf_counter(), sum(os.times()[:2])
    for i in range(frames):
        t = time.perf_counter()
        engine.classify_frame(frame, REGION)
        latency.append(time.perf_counter() - t)
        time.sleep(max(0.0, start + (i + 1) * period - time.perf_counter()))
    cpu = sum(os.times()[:2]) - cpu0
    return {"cpu_ms": 1e3 * cpu / frames, "latency_ms": 1e3 * float(np.median(latency)),
            "core_pct": 100 * cpu / (time.perf_counter() - start)}


def run_worker(model: str, threads: int, frames: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", model, str(threads), "--frames", str(frames)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150, help="frames classified per worker, at 15 a second")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.frames)))
        return
    runs = {(m, t): [] for m in MODELS for t in THREADS}
    for r in range(args.rounds):
        for key in runs:
            runs[key].append(run_worker(*key, args.frames))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {key: {k: float(np.median([x[k] for x in v])) for k in v[0]} for key, v in runs.items()}
    print(f"CPU: {cpu_model()}; {args.frames} frames a worker at {FPS:g} fps, {args.rounds} rounds, medians")
    print(f"  {'model':<20}{'threads':<10}{'CPU ms/frame':>14}{'% of a core':>13}{'latency ms':>12}")
    for (m, t), x in med.items():
        print(f"  {m:<20}{t or 'OpenVINO':<10}{x['cpu_ms']:>14.2f}{x['core_pct']:>13.1f}{x['latency_ms']:>12.2f}")
    for m in MODELS:
        one, auto = med[(m, 1)], med[(m, 0)]
        print(f"{m}: one thread / OpenVINO's choice: CPU {one['cpu_ms'] / auto['cpu_ms']:.2f}x, "
              f"latency {one['latency_ms'] / auto['latency_ms']:.2f}x")
    if args.json:
        print(json.dumps({f"{m}/{t}": x for (m, t), x in med.items()}))


if __name__ == "__main__":
    main()
