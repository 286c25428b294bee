"""Camera frame -> model input: native fused kernels vs numpy/OpenCV pipelines, side by side.

All pipelines run round-robin in one process (one call each per round), so a noisy machine
slows them alike and the ratios hold. Medians in microseconds per frame.

    python benchmarks/bench_preprocess.py [--rounds 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np

from edge import _native
from edge.preprocess import IMAGENET_MEAN, IMAGENET_STD

SIZE = 224
RESOLUTIONS = {"640x480": (480, 640), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
MEAN = np.asarray(IMAGENET_MEAN, np.float32)
STD = np.asarray(IMAGENET_STD, np.float32)


def camera_like_frame(h: int, w: int) -> np.ndarray:
    """Smooth colour gradients plus sensor noise: the cost of every pipeline here is
    independent of content, but a realistic frame keeps the outputs meaningful."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 60 * np.sin(xx / 97), 110 + 50 * np.cos(yy / 61), 150 + 40 * np.sin((xx + yy) / 140)], -1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def pipelines(frame: np.ndarray) -> dict:
    out = np.empty((1, 3, SIZE, SIZE), np.float32)
    out_u8 = np.empty((SIZE, SIZE, 3), np.uint8)
    scale = (1.0 / (255.0 * STD))[:, None, None]
    bias = (-MEAN / STD)[:, None, None]

    def normalise_into(resized):
        np.copyto(out[0], resized[:, :, ::-1].transpose(2, 0, 1), casting="unsafe")
        out[0] *= scale
        out[0] += bias
        return out

    def best_numpy():  # the bar: INTER_AREA, preallocated output, in-place maths
        return normalise_into(cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_AREA))

    def fast_approx_numpy():  # 2x2 box halvings (OpenCV's fast path), then bilinear: approximate area
        small = frame
        while min(small.shape[:2]) >= 2 * SIZE:
            h, w = small.shape[0] // 2 * 2, small.shape[1] // 2 * 2
            small = cv2.resize(small[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return normalise_into(cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR))

    def naive_numpy():  # fresh arrays at every step
        rgb = cv2.cvtColor(cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
        return np.ascontiguousarray(x.transpose(2, 0, 1))[None]

    return {
        "native_f32": lambda: _native.preprocess(frame, None, SIZE, IMAGENET_MEAN, IMAGENET_STD, out),
        "native_u8": lambda: _native.preprocess_u8(frame, None, SIZE, out_u8),
        "best_numpy": best_numpy,
        "fast_approx_numpy": fast_approx_numpy,
        "naive_numpy": naive_numpy,
    }


def measure(fns: dict, rounds: int) -> dict[str, float]:
    times = {name: [] for name in fns}
    for fn in fns.values():  # warm-up: caches, thread pools, first-call allocations
        for _ in range(5):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            times[name].append(time.perf_counter_ns() - t0)
    return {name: float(np.median(t)) / 1000.0 for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = ap.parse_args()

    print(f"{platform.processor() or platform.machine()}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
          f"{args.rounds} rounds, median us/frame to 1x3x{SIZE}x{SIZE}")
    results = {}
    for label, (h, w) in RESOLUTIONS.items():
        r = measure(pipelines(camera_like_frame(h, w)), args.rounds)
        results[label] = {k: round(v, 1) for k, v in r.items()}
        cells = "  ".join(f"{k} {v:8.1f}" for k, v in r.items())
        print(f"{label:>10}: {cells}  | best_numpy/native_f32 {r['best_numpy'] / r['native_f32']:.2f}x")
    at720 = results["1280x720"]
    summary = {
        "us_per_frame": results,
        "speedup_vs_best_numpy": round(at720["best_numpy"] / at720["native_f32"], 2),
        "speedup_u8_vs_best_numpy": round(at720["best_numpy"] / at720["native_u8"], 2),
        "speedup_vs_fast_approx_numpy": round(at720["fast_approx_numpy"] / at720["native_f32"], 2),
    }
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
