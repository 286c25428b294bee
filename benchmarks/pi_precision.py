"""The shipped models at the precision a Raspberry Pi 5 runs them (f16), against f32: the model
card's "At the Pi's precision" figures.

This x86 CPU has no fp16 arithmetic (OpenVINO turns an f16 hint into bf16 here), so the f16
figures come from the Pi's own runtime under `qemu-aarch64 -cpu cortex-a76` (tests/pi/emulator.py,
root from tests/pi/make-root.sh), where OpenVINO's ARM CPU plugin runs f16 by default, and the
f32 figures from this machine with `mpox classify --precision f32`. Both are `mpox classify
--format jsonl` on the same files; labels are decided at each model's mpox threshold, as the
kiosk decides. Pictures: the first N of each class folder, by file name.

    python -m benchmarks.pi_precision --data ../shared/data/msid --per-class 20 [--model models/X.xml ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from edge.images import IMAGE_SUFFIXES
from tests.pi.emulator import PI_CPUS, REPO, make_root, run_pi, stage_app

MODELS = ["fast-mpoxnet.xml", "fast-mpoxnet-int8.xml", "efficientnet-lite0.xml", "efficientnet-lite0-int8.xml"]


def sample(data: Path, per_class: int) -> list[tuple[Path, str]]:
    out = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:per_class]
        out += [(f, folder.name) for f in files]
    return out


def rows(stdout: str) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, stdout.splitlines()) if "label" in r}


def figures(results: dict[str, dict], truth: dict[str, str]) -> dict:
    right = sum(results[p]["label"] == c for p, c in truth.items())
    mpox = [p for p, c in truth.items() if c == "Monkeypox"]
    other = [p for p, c in truth.items() if c != "Monkeypox"]
    return {"accuracy": right / len(truth),
            "mpox_sensitivity": sum(results[p]["label"] == "Monkeypox" for p in mpox) / max(1, len(mpox)),
            "mpox_specificity": sum(results[p]["label"] != "Monkeypox" for p in other) / max(1, len(other))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--model", action="append", type=Path, help="default: every shipped model")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    picked = sample(a.data, a.per_class)
    truth = {str(f): c for f, c in picked}
    files = [str(f) for f, _ in picked]
    models = a.model or [REPO / "models" / m for m in MODELS]
    root = make_root()
    report = {"pictures": len(files), "per_class": a.per_class, "data": str(a.data), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        app = stage_app(work, root)
        for model in models:
            model = model.resolve()
            x86 = subprocess.run([sys.executable, "-m", "edge.cli", "classify", "--format", "jsonl", "--precision", "f32",
                                  "--model", str(model), *files], capture_output=True, text=True, check=True)
            pi = run_pi(PI_CPUS["pi5"], ["classify", "--format", "jsonl", "--model", str(model), *files], app, work, timeout=7200)
            if pi.returncode != 0:
                sys.exit(f"{model.name} under emulation failed:\n{pi.stderr[-2000:]}")
            precision = next((line.rsplit(" ", 1)[-1] for line in pi.stderr.splitlines() if "inference precision" in line), "?")
            ref, emu = rows(x86.stdout), rows(pi.stdout)
            deltas = [abs(emu[p]["probabilities"][k] - v) for p in files for k, v in ref[p]["probabilities"].items()]
            report["models"][model.name] = {
                "f32_x86": figures(ref, truth), "pi5": figures(emu, truth), "pi5_precision": precision,
                "labels_changed": sum(ref[p]["label"] != emu[p]["label"] for p in files),
                "max_abs_probability_difference": max(deltas)}
            print(f"{model.name}: done", file=sys.stderr, flush=True)
    print(f"{len(files)} pictures ({a.per_class} a class, the first by name in {a.data}); labels at each model's threshold\n")
    print("| model | f32 (x86) accuracy / mpox sens. / spec. | Pi 5 (emulated) precision | accuracy / mpox sens. / spec. | labels changed | max abs. probability difference |")
    print("|---|---|---|---|---|---|")
    pct = lambda f: f"{f['accuracy']:.1%} / {f['mpox_sensitivity']:.1%} / {f['mpox_specificity']:.1%}"  # noqa: E731
    for name, m in report["models"].items():
        print(f"| {name} | {pct(m['f32_x86'])} | {m['pi5_precision']} | {pct(m['pi5'])} | {m['labels_changed']} of {len(files)} "
              f"| {m['max_abs_probability_difference']:.4f} |")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
