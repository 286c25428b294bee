"""Model inference, side by side: PyTorch eager fp32, ONNX Runtime fp32, OpenVINO fp32,
OpenVINO's default precision (bf16 on AVX-512 CPUs) and OpenVINO int8 (its float remainder at
the default precision, and at f32), for both shipped models.

Every (model, backend) runs in its own worker process, so its peak RSS is what a process
that only loads and runs that model needs. Workers run round-robin for --rounds rounds (a
noisy machine slows them alike) and the median over rounds is kept.

Per backend: batch-1 latency p50/p99 (sync, --threads threads), batch-1 frames/s
(1 / mean latency), and for OpenVINO frames/s with an AsyncInferQueue under the THROUGHPUT
hint (all cores). Needs the `train` and `dev` extras (torch, onnxruntime).

    python benchmarks/bench_inference.py [--rounds 3] [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_flags, cpu_model

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"fast-mpoxnet": ROOT / "models" / "fast-mpoxnet", "efficientnet-lite0": ROOT / "models" / "efficientnet-lite0"}
BACKENDS = ("torch-fp32", "onnxruntime-fp32", "openvino-fp32", "openvino-default", "openvino-int8", "openvino-int8-f32")


def torch_model(name: str):
    """The exported model's architecture and weights in eager PyTorch (weights from the IR's
    checkpoint when shipped; timing does not depend on the weights' values)."""
    import torch

    from training.models import build_model

    ckpt = MODELS[name].with_suffix(".pt")
    if ckpt.is_file():
        from training.train import load_checkpoint

        model = load_checkpoint(ckpt)[0]
    else:
        model = build_model(name, 4, pretrained=False)
    return model.eval().to(memory_format=torch.channels_last)


def time_sync(run, x: np.ndarray, seconds: float) -> list[float]:
    for _ in range(20):
        run(x)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return times


def worker(name: str, backend: str, threads: int, seconds: float) -> dict:
    """Load one model on one backend, time it, report (runs in its own process)."""
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    xml = MODELS[name].with_suffix(".xml")
    result: dict = {}
    if backend == "torch-fp32":
        import torch

        torch.set_num_threads(threads)
        model = torch_model(name)
        with torch.inference_mode():
            times = time_sync(lambda a: model(torch.from_numpy(a)), x, seconds)
    elif backend == "onnxruntime-fp32":
        import onnxruntime as ort

        onnx_file = MODELS[name].with_suffix(".onnx")
        if not onnx_file.is_file():  # not shipped: export the same weights for this run
            import torch

            onnx_file = Path(tempfile.mkdtemp()) / f"{name}.onnx"
            torch.onnx.export(torch_model(name), (torch.from_numpy(x),), str(onnx_file), dynamo=True, external_data=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        feed, logits = session.get_inputs()[0].name, [session.get_outputs()[0].name]
        times = time_sync(lambda a: session.run(logits, {feed: a}), x, seconds)  # output 0 only, as the kiosk
    else:
        import openvino as ov

        from edge.engine import logits_only

        core = ov.Core()
        path = MODELS[name].parent / f"{name}-int8.xml" if backend.startswith("openvino-int8") else xml
        precision = {"INFERENCE_PRECISION_HINT": "f32"} if backend in ("openvino-fp32", "openvino-int8-f32") else {}
        model = logits_only(core.read_model(path))  # as edge.engine's classify_frame: without the cam output
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, **precision})
        request = compiled.create_infer_request()
        times = time_sync(lambda a: request.infer({0: a}, share_inputs=True), x, seconds)  # as edge.engine does
        result["precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        result["throughput_fps"] = async_fps(core, model, precision, x, seconds)
    t = np.array(times) * 1e3
    result.update(p50_ms=float(np.percentile(t, 50)), p99_ms=float(np.percentile(t, 99)), fps=float(1e3 / t.mean()),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def async_fps(core, model, precision: dict, x: np.ndarray, seconds: float) -> float:
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", **precision})
    queue = __import__("openvino").AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    for _ in range(len(queue) * 4):
        queue.start_async({0: x})
    queue.wait_all()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(len(queue)):
            queue.start_async({0: x})
        done += len(queue)
    queue.wait_all()
    return done / (time.perf_counter() - t0)


def facts(name: str) -> dict:
    import openvino as ov

    from training.complexity import complexity

    c = complexity(torch_model(name))
    sizes = {b: (MODELS[name].parent / f"{name}{s}.bin").stat().st_size for b, s in (("fp32_ir", ""), ("int8_ir", "-int8"))}
    rt = ov.Core().read_model(MODELS[name].with_suffix(".xml")).get_rt_info()["mpox"]
    return {"parameters": c["parameters"], "gflops": round(c["gflops"], 4), "weights_bytes": sizes,
            "stored_parameters": int(rt["parameters"].astype(str))}


def run_worker(name: str, backend: str, threads: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", name, backend, "--threads", str(threads), "--seconds", str(seconds)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])






def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="timing window per worker and mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.threads, args.seconds)))
        return

    runs: dict = {m: {b: [] for b in BACKENDS} for m in args.models}
    for r in range(args.rounds):
        for m in args.models:
            for b in BACKENDS:
                runs[m][b].append(run_worker(m, b, args.threads, args.seconds))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    results = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": args.threads, "rounds": args.rounds, "models": {}}
    for m in args.models:
        table = {}
        for b in BACKENDS:
            ok = [x for x in runs[m][b] if "error" not in x]
            if not ok:
                table[b] = {"error": runs[m][b][0]["error"]}
                continue
            keys = [k for k in ok[0] if isinstance(ok[0][k], float)]
            table[b] = {k: float(np.median([x[k] for x in ok])) for k in keys}
            if "precision" in ok[0]:
                table[b]["precision"] = ok[0]["precision"]
        results["models"][m] = {"facts": facts(m), "backends": table}
    print_table(results)
    fm = results["models"].get("fast-mpoxnet", {}).get("backends", {})
    if all("fps" in fm.get(b, {}) for b in ("openvino-int8", "openvino-int8-f32", "torch-fp32", "onnxruntime-fp32")):
        for key, b in (("int8", "openvino-int8"), ("int8_f32", "openvino-int8-f32")):
            results[f"{key}_vs_torch"] = fm[b]["fps"] / fm["torch-fp32"]["fps"]
            results[f"{key}_vs_ort"] = fm[b]["fps"] / fm["onnxruntime-fp32"]["fps"]
            print(f"\nFast-MpoxNet batch 1: {b} is {results[f'{key}_vs_torch']:.2f}x PyTorch eager and "
                  f"{results[f'{key}_vs_ort']:.2f}x ONNX Runtime fp32 (frames/s)")
    if args.json:
        print(json.dumps(results))


def print_table(results: dict) -> None:
    print(f"CPU: {results['cpu']} ({results['threads']} threads; flags {' '.join(results['cpu_flags'])})")
    for m, r in results["models"].items():
        f = r["facts"]
        print(f"\n{m}: {f['parameters']:,} parameters, {f['gflops']} GFLOPs, weights fp32 IR "
              f"{f['weights_bytes']['fp32_ir'] / 1e6:.2f} MB, int8 IR {f['weights_bytes']['int8_ir'] / 1e6:.2f} MB")
        print(f"  {'backend':<18}{'p50 ms':>9}{'p99 ms':>9}{'fps b1':>9}{'fps async':>11}{'peak RSS MB':>13}  precision")
        for b, x in r["backends"].items():
            if "error" in x:
                print(f"  {b:<18}error: {x['error']}")
                continue
            tput = f"{x['throughput_fps']:>11.0f}" if "throughput_fps" in x else f"{'-':>11}"
            print(f"  {b:<18}{x['p50_ms']:>9.3f}{x['p99_ms']:>9.3f}{x['fps']:>9.0f}{tput}{x['peak_rss_mb']:>13.0f}  {x.get('precision', 'f32')}")


if __name__ == "__main__":
    main()
