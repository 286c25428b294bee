"""Runs the kiosk's own command line as a Raspberry Pi runs it: aarch64 Python 3.11, the locked
aarch64 wheels and the cross-built edge._native, under qemu-aarch64 with the Pi's CPU named
(qemu's default CPU, `max`, has features no Pi has). The root comes from tests/pi/make-root.sh.

Raspberry Pi 4: Cortex-A72 (Armv8.0: no fp16 arithmetic, no dot product);
Raspberry Pi 5: Cortex-A76 (Armv8.2: fp16 arithmetic and dot product).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# built and cached by make-root.sh, outside the source tree (see there)
ROOT = Path(os.environ.get("MPOX_PI_ROOT") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mpox-kiosk" / "pi-root")
NATIVE_DIR = REPO / "build" / "pi-native" / "edge"  # edge._native for aarch64, built by make-root.sh
PI_CPUS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}
NATIVE = "_native.cpython-311-aarch64-linux-gnu.so"


def make_root(root: Path = ROOT) -> Path:
    """The cached root, built or rebuilt when missing, stale or half-written (make-root.sh)."""
    env = {**os.environ, "PYTHON": sys.executable}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run([str(REPO / "tests" / "pi" / "make-root.sh"), str(root)], check=True, env=env, cwd=REPO)
    return root


def stage_app(dest: Path, root: Path = ROOT) -> Path:
    """The kiosk's Python package as installed on a Pi: this checkout's edge/ with the aarch64
    extension in it (never the host's), in a folder of its own on PYTHONPATH."""
    app = dest / "app"
    shutil.copytree(REPO / "edge", app / "edge", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy2(NATIVE_DIR / NATIVE, app / "edge" / NATIVE)
    return app


def pi_command(cpu: str, args: list[str], app: Path, root: Path = ROOT) -> list[str]:
    """`python3.11 -m edge.cli ARGS` (the installed `mpox` script's entry point) on the given CPU."""
    return ["qemu-aarch64", "-cpu", cpu, "-L", str(root), str(root / "usr" / "bin" / "python3.11"), "-m", "edge.cli", *args]


def pi_env(app: Path, home: Path, root: Path = ROOT) -> dict[str, str]:
    """A clean environment: nothing of the host's Python or OpenBLAS settings leaks in."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": f"{app}{os.pathsep}{root / 'opt' / 'site'}"}


def run_pi(cpu: str, args: list[str], app: Path, cwd: Path, timeout: float = 900, root: Path = ROOT) -> subprocess.CompletedProcess:
    """One command under emulation; cwd must not hold an edge/ folder (it would shadow the app)."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(["nice", "-n", "10", *pi_command(cpu, args, app, root)], cwd=cwd, env=pi_env(app, home, root),
                          capture_output=True, text=True, timeout=timeout)
