"""Helpers of the failure suite: run `mpox` as a real process, as systemd or a shell would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mpox_process(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edge.cli", *args], cwd=cwd, env=env, text=True, **kwargs)


def mpox_run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)


def assert_one_clear_line(result: subprocess.CompletedProcess) -> None:
    """Failed the way a user can act on: exit 1, an 'Error:' line, no traceback, no crash."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Error:" in result.stderr, result.stderr[-2000:]


@pytest.fixture
def demo_config(tmp_path):
    p = tmp_path / "kiosk.yaml"
    p.write_text("state_dir: state\nsource:\n  kind: demo\n  fps: 60\ndecision:\n  frames: 4\n  best_frames: 3\n"
                 "  result_hold_s: 0.3\n  leave_after_s: 0.2\npresence:\n  learn_s: 0.2\n")
    return p
