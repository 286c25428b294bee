"""One look at the scene (`SceneWatch.observe`) for each frame of bench_process's recorded visits
or empty room at 640x480, every frame in turn as a screening sees them, per source tree, the
trees alternating round by round: the scene's own cost without the kiosk around it (a tight
loop: warm caches, so a lower bound on what a look costs in the kiosk). Prints per tree the
median over rounds of the loop thread's CPU per look and of the whole process's (OpenCV's
worker threads included), the ratio to the first tree, and whether every tree's answers
(presence, region, fill, motion) were the same.

    python benchmarks/bench_scene.py --tree DIR [DIR ...] [--what visits|empty] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench_process

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 480)


def child(what: str, cache: Path) -> dict:
    import cv2
    import numpy as np

    from edge.config import PresenceConfig, QualityConfig
    from edge.quality import box_pixels
    from edge.scene import SceneWatch

    jpegs = bench_process.load_jpegs(bench_process.frames_file(cache, *SIZE, what))
    frames = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    box = box_pixels(QualityConfig().box, *SIZE)
    watch = SceneWatch(PresenceConfig())
    thread, process = time.thread_time(), time.process_time()
    views = [watch.observe(f, box, k / bench_process.FPS) for k, f in enumerate(frames)]
    thread, process = time.thread_time() - thread, time.process_time() - process
    answers = repr([(v.present, v.region, round(v.fill, 6), round(v.motion, 6)) for v in views])
    return {"looks": len(frames), "thread_ms": 1000 * thread / len(frames), "process_ms": 1000 * process / len(frames),
            "answers": hashlib.sha256(answers.encode()).hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, nargs="+", default=[ROOT])
    ap.add_argument("--what", choices=("visits", "empty"), default="visits")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=bench_process.CACHE)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.what, args.cache)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    runs: dict[Path, list[dict]] = {t: [] for t in args.tree}
    for _ in range(args.rounds):
        for tree in args.tree:
            out = subprocess.run([sys.executable, __file__, "--child", "--what", args.what, "--cache", str(args.cache)],
                                 env={**os.environ, "PYTHONPATH": str(tree.resolve())}, cwd=tree, capture_output=True,
                                 text=True, check=True)
            runs[tree].append(json.loads(out.stdout))
    first = None
    for tree, rows in runs.items():
        thread = statistics.median(r["thread_ms"] for r in rows)
        process = statistics.median(r["process_ms"] for r in rows)
        first = first or (thread, process)
        answers = {r["answers"] for r in rows}
        print(f"{tree}: {rows[0]['looks']} looks of {args.what}; a look {thread:.2f} ms loop thread ({thread / first[0]:.2f}x), "
              f"{process:.2f} ms process ({process / first[1]:.2f}x); answers {','.join(sorted(answers))}")


if __name__ == "__main__":
    main()
