"""The Raspberry Pi's whole runtime, emulated (issue 24): aarch64 Python 3.11 of Debian bookworm
(what Raspberry Pi OS Bookworm is), the wheels of deploy/requirements-aarch64.lock, edge._native
cross-built for it, and OpenVINO's ARM CPU plugin, run by qemu-aarch64 as a Pi 4 (Cortex-A72)
and a Pi 5 (Cortex-A76). The kiosk's own commands (`mpox classify`, `mpox kiosk run`, `mpox
check`) run there and on this x86 machine, and must agree.

x86 is the reference at true f32 (`--precision f32`, `model.inference_precision: f32`; its
default here would be bf16). A Pi 4 runs f32 too: the same numbers up to summation order. A Pi
5 runs f16 by default. Tolerance for it, F16_TOLERANCE = 0.03: f16 keeps 11 significant bits
(rounding 2^-11 = 4.9e-4 relative per operation), and these errors add up over the network's
layers; a probability moves by at most a quarter of its logit's error (dp/dz <= 1/4 for a
softmax). The largest difference measured over 80 MSID photos is 0.012 for Fast-MpoxNet's float
IR and 0.017 for EfficientNet-Lite0's (models/README.md "At the Pi's precision"); 0.03 is 2.5
and 1.8 times those. The int8 IR has its own tolerance (its test). A label can flip only where
the x86 decision is that close to the rule's boundary, so every picture used here is checked to
be clear of it (test_pictures_are_clear_of_decision_boundaries).

Speed under emulation means nothing; only results are compared. Needs qemu-user, debootstrap,
g++-aarch64-linux-gnu and cmake (.ci/run installs them) and root to build the cached root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import QualityConfig
from edge.contract import decide
from edge.engine import Engine
from edge.images import read_image
from edge.visits import VisitCamera, plan_visit
from tests.pi.emulator import NATIVE, NATIVE_DIR, PI_CPUS, REPO, ROOT, make_root, run_pi, stage_app

DEMO = REPO / "edge" / "demo"
MODELS = {"float": REPO / "models" / "fast-mpoxnet.xml", "int8": REPO / "models" / "fast-mpoxnet-int8.xml"}
PICTURES = ["chickenpox14.png", "measles41.png", "monkeypox5.png", "normal166.png"]  # one of each class
VISITS = ["monkeypox5.png", "chickenpox14.png"]  # the clip: mpox suspected, then other rash suspected
PRECISION = {"pi4": "f32", "pi5": "f16"}  # what OpenVINO's ARM plugin picks by default on each CPU
F16_TOLERANCE = 0.03
INT8_F16_TOLERANCE = 0.2  # an int8 IR at f16: see test_classify_with_the_int8_model_agrees_with_x86_on_a_pi5
F32_TOLERANCE = 1e-4  # the same arithmetic in another order; jsonl rounds to 1e-6
TOLERANCE = {"f32": F32_TOLERANCE, "f16": F16_TOLERANCE}
CLIP_FPS, CLIP_SIZE = 10, (320, 240)
TOOLS = ("qemu-aarch64", "debootstrap", "aarch64-linux-gnu-g++", "cmake")
# Emulation is slow (seconds an inference) and the runs of both Pis take place in the first
# test's fixtures: about 3 minutes on 2 idle cores, several times that on busy ones.
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def pi_root() -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    ready = subprocess.run([str(REPO / "tests/pi/make-root.sh"), "--check", str(ROOT)], capture_output=True).returncode == 0
    why = f"missing {', '.join(missing)}" if missing else None if ready or os.geteuid() == 0 else "building the root needs root"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the emulated Pi cannot run: {why} (.ci/run installs the tools)")
        pytest.skip(f"the emulated Pi cannot run here: {why}")
    return make_root()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Two visits in one room (edge/visits.py, steadied: no tremor, drift or distractor), lossless
    (FFV1), so that the Pi decodes the very pixels x86 decodes."""
    path = tmp_path_factory.mktemp("clip") / "visits.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), CLIP_FPS, CLIP_SIZE)
    assert writer.isOpened()
    room = None
    for i, name in enumerate(VISITS):
        plan = dataclasses.replace(
            plan_visit(read_image(DEMO / name), np.random.default_rng(i)), empty_s=1.0 if i == 0 else 0.5, approach_s=0.5,
            hold_s=2.5, leave_s=0.5, after_s=3.0, coverage=0.8, offset=(0.0, 0.0), angle=0.0, distractor="none",
            tremor_px=1.0, gain=(1.0, 0.0, 5.0), white_balance=(1.0, 1.0, 1.0), noise=1.0, jpeg=90)
        camera = VisitCamera(plan, *CLIP_SIZE, QualityConfig().box, CLIP_FPS, room=room)
        room = camera.scene
        for n in range(int(camera.end * CLIP_FPS)):
            writer.write(camera.frame(n / CLIP_FPS))
    writer.release()
    return path


def kiosk_config(folder: Path, source: str, precision: str | None) -> Path:
    """The same kiosk on both machines: the clip played once at its own clock, no screen, six
    frames a screening (fewer inferences under emulation), the result held 1 s."""
    config = folder / "kiosk.yaml"
    config.write_text(
        f"kiosk_id: emulated\nstate_dir: {folder / 'state'}\n{source}"
        f"model:\n  path: {MODELS['float']}\n  inference_precision: {precision or 'null'}\n"
        "decision:\n  frames: 6\n  best_frames: 4\n  result_hold_s: 1.0\nweb:\n  enabled: false\n")
    return config


def clip_source(clip: Path) -> str:
    return f"source:\n  kind: file\n  target: {clip}\n  fps: 0\n"


def camera_source() -> str:  # for `mpox check`: a camera that keeps delivering for its 3 s
    return f"source:\n  kind: folder\n  target: {DEMO}\n  fps: 15\n  loop: true\n"


def screenings(state: Path) -> list[dict]:
    db = sqlite3.connect(state / "audit.sqlite")
    try:
        rows = db.execute("SELECT outcome, label, probabilities, frames FROM screenings ORDER BY rowid").fetchall()
        started = db.execute("SELECT detail FROM events WHERE kind = 'started'").fetchall()
    finally:
        db.close()
    return [{"outcome": o, "label": label, "probabilities": json.loads(p), "frames": f, "started": started[0][0]}
            for o, label, p, f in rows]


def classified(stdout: str) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in map(json.loads, stdout.splitlines())}


def mpox(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The same command on this x86 machine."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def x86(clip, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("x86")
    out = {}
    for kind, model in MODELS.items():
        r = mpox(["classify", "--format", "jsonl", "--precision", "f32", "--model", str(model), *PICTURES], DEMO)
        assert r.returncode == 0, r.stderr
        out[kind] = classified(r.stdout)
    r = mpox(["kiosk", "run", "--no-view", "--config", str(kiosk_config(work, clip_source(clip), "f32"))], work)
    assert r.returncode == 0, r.stderr
    out["kiosk"] = screenings(work / "state")
    return out


@pytest.fixture(scope="module")
def pi(pi_root, clip, tmp_path_factory) -> dict:
    """Every command on both emulated Pis, the two Pis side by side (one core each)."""
    work = tmp_path_factory.mktemp("pi")
    app = stage_app(work, pi_root)

    def one_pi(name: str) -> dict:
        cpu, folder = PI_CPUS[name], work / name
        (folder / "check").mkdir(parents=True)
        out = {kind: run_pi(cpu, ["classify", "--format", "jsonl", "--model", str(m), *(str(DEMO / p) for p in PICTURES)],
                            app, folder, root=pi_root)
               for kind, m in MODELS.items()}
        out["kiosk"] = run_pi(cpu, ["kiosk", "run", "--no-view", "--config", str(kiosk_config(folder, clip_source(clip), None))],
                              app, folder, root=pi_root)
        out["screenings"] = screenings(folder / "state") if out["kiosk"].returncode == 0 else None
        out["check"] = run_pi(cpu, ["check", "--config", str(kiosk_config(folder / "check", camera_source(), None))], app,
                              folder, root=pi_root)
        return out

    with ThreadPoolExecutor(len(PI_CPUS)) as pool:
        futures = {name: pool.submit(one_pi, name) for name in PI_CPUS}
        return {name: f.result() for name, f in futures.items()}


def test_pictures_are_clear_of_decision_boundaries(x86):
    """The comparison means something only if f16 rounding within the tolerance cannot move a
    picture across the decision rule: mpox's probability is more than F16_TOLERANCE from the
    threshold, and below it the two likeliest other classes more than twice that apart. (For the
    int8 IR that is not enough in general: see the int8 test.)"""
    for kind, model in MODELS.items():
        info, tolerance = Engine(model).info, F16_TOLERANCE
        for name, r in x86[kind].items():
            p = np.array([r["probabilities"][k] for k in info.labels])
            m = info.labels.index("Monkeypox")
            # mpox against its threshold: one probability moves, by at most the tolerance
            assert abs(p[m] - info.mpox_threshold) > tolerance, (kind, name, p, info.mpox_threshold)
            if p[m] < info.mpox_threshold:  # the two likeliest others: both move, the gap by up to twice that
                others = np.sort(np.delete(p, m))
                assert others[-1] - others[-2] > 2 * tolerance, (kind, name, p)
            assert r["label"] == info.labels[int(decide(p, info.labels, info.mpox_threshold)[0])]


def assert_close(pi_probs: dict, x86_probs: dict, tolerance: float, what: str) -> None:
    assert pi_probs.keys() == x86_probs.keys(), what
    worst = max(abs(pi_probs[k] - x86_probs[k]) for k in x86_probs)
    assert worst <= tolerance, f"{what}: {worst:.5f} > {tolerance} ({pi_probs} vs {x86_probs})"


@pytest.mark.parametrize("name", list(PI_CPUS))
def test_classify_with_the_float_model_agrees_with_x86(pi, x86, name):
    r = pi[name]["float"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"inference precision {PRECISION[name]}" in r.stderr  # the engine names what it runs
    assert "preprocessing: native C++ kernels" in r.stderr  # the cross-built extension, not the numpy fallback
    got = classified(r.stdout)
    assert got.keys() == x86["float"].keys()
    for picture, ref in x86["float"].items():
        assert got[picture]["label"] == ref["label"], picture
        assert_close(got[picture]["probabilities"], ref["probabilities"], TOLERANCE[PRECISION[name]], f"{name} {picture}")


def test_classify_with_the_int8_model_agrees_with_x86_on_a_pi5(pi, x86):
    """An int8 IR moves further at f16 than a float one: its activations are rounded to 256
    levels between layers, and where f16 arithmetic puts a value on the other side of a rounding
    boundary it moves by a whole level (about 0.4% of that tensor's range), not by 2^-11. Over 80
    MSID photos (models/README.md "At the Pi's precision") the largest difference was 0.163 and 4
    labels of 80 changed; INT8_F16_TOLERANCE = 0.2 covers
    that. The labels of these four pictures, clear of the boundary by the float tolerance, must
    still be the same; normal166.png moves 0.066."""
    r = pi["pi5"]["int8"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "inference precision f16" in r.stderr
    got = classified(r.stdout)
    assert got.keys() == x86["int8"].keys()
    for picture, ref in x86["int8"].items():
        assert got[picture]["label"] == ref["label"], picture
        assert_close(got[picture]["probabilities"], ref["probabilities"], INT8_F16_TOLERANCE, f"pi5 int8 {picture}")


def test_the_int8_model_is_refused_with_its_reason_on_a_pi4(pi):
    """Found here (README "Raspberry Pi"): OpenVINO 2026.4.1's ARM plugin cannot compile the int8
    IRs on an Armv8.0 core (Cortex-A72; A53 the same), "object is not initialized", at any
    precision. The kiosk must say so and stop, naming the model, not crash or run it wrong.
    When a new OpenVINO compiles it, this test fails: then compare it like the Pi 5's."""
    r = pi["pi4"]["int8"]
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr[-3000:])
    assert f"cannot compile {MODELS['int8']} for CPU" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("name", list(PI_CPUS))
def test_kiosk_run_on_a_lossless_clip_agrees_with_x86(pi, x86, name):
    """`mpox kiosk run` on the recorded visits: the same screenings with the same outcomes and
    labels, each from the same frames, probabilities within the precision's tolerance; the log
    and the audit log's start event name the precision the Pi runs at."""
    r = pi[name]["kiosk"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"inference precision {PRECISION[name]}" in r.stderr
    got, ref = pi[name]["screenings"], x86["kiosk"]
    assert [s["outcome"] for s in ref] == ["mpox_suspected", "other_rash_suspected"]  # the clip is what it should be
    assert [(s["outcome"], s["label"], s["frames"]) for s in got] == [(s["outcome"], s["label"], s["frames"]) for s in ref]
    for n, (g, x) in enumerate(zip(got, ref)):
        assert_close(g["probabilities"], x["probabilities"], TOLERANCE[PRECISION[name]], f"{name} screening {n}")
    assert f"({PRECISION[name]}) on CPU" in got[0]["started"] and "(f32) on CPU" in ref[0]["started"]


@pytest.mark.parametrize("name", list(PI_CPUS))
def test_check_on_the_pi_reports_its_precision_and_native_kernels(pi, name):
    r = pi[name]["check"]
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    model = next(line for line in lines if line.split()[1:2] == ["model"])
    assert model.startswith("OK") and f"runs at {PRECISION[name]} on CPU" in model, r.stdout
    native = next(line for line in lines if "native extension" in line)
    assert native.startswith("OK") and native.endswith(" native"), r.stdout


def test_the_pi_runs_exactly_the_locked_packages(pi_root):
    """What the emulated Pi runs is what deploy/install.sh installs on one: every package of
    deploy/requirements-aarch64.lock at its version, and the extension built for aarch64."""
    from tests.test_locks import locked

    installed = {}
    for meta in (pi_root / "opt" / "site").glob("*.dist-info/METADATA"):
        fields = dict(line.split(": ", 1) for line in meta.read_text().splitlines()[:5] if ": " in line)
        installed[canonical(fields["Name"])] = fields["Version"]
    assert installed == locked("aarch64")
    assert (NATIVE_DIR / NATIVE).read_bytes()[18] == 183  # e_machine EM_AARCH64


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_a_stale_or_half_written_root_is_not_used(pi_root, tmp_path):
    """make-root.sh uses a root only when its stamp carries the current key (this script, the
    lock file, pybind11's version); a root without it, or with another, is built anew."""
    check = [str(REPO / "tests/pi/make-root.sh"), "--check"]
    assert subprocess.run([*check, str(pi_root)], capture_output=True).returncode == 0
    root = tmp_path / "pi-root"
    r = subprocess.run([*check, str(root)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout.startswith("missing")
    shutil.copytree(pi_root / "usr" / "include" / "python3.11", root / "usr" / "include" / "python3.11")  # half of one
    r = subprocess.run([*check, str(root)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout.startswith("incomplete")
    (root / ".pi-root-complete").write_text("0123456789abcdef\n")  # built for another lock or script
    r = subprocess.run([*check, str(root)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout.startswith("stale")
    shutil.copy2(pi_root / ".pi-root-complete", root / ".pi-root-complete")
    assert subprocess.run([*check, str(root)], capture_output=True).returncode == 0
