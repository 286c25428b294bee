"""Nothing is written outside the configured state and log locations, and OpenVINO's
telemetry (a client id under $HOME/intel, statistics to Google Analytics) is declined in
code: the kiosk and `mpox classify` run with an empty temporary HOME and leave it empty."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(args, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_classify_and_the_kiosk_write_nothing_to_home_and_only_their_state(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "kiosk.yaml").write_text("state_dir: state\nsource:\n  kind: demo\n  fps: 60\npresence:\n  learn_s: 0.2\n")
    result = run(["classify", str(ROOT / "edge" / "demo" / "measles33.png")], home, work)
    assert result.returncode == 0, result.stderr
    result = run(["kiosk", "run", "--no-view", "--max-frames", "120", "--config", "kiosk.yaml"], home, work)
    assert result.returncode == 0, result.stderr
    assert files_under(home) == []
    assert {f.split("/")[0] for f in files_under(work)} == {"kiosk.yaml", "state"}
