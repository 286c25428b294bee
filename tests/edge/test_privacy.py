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


def test_no_outcome_reaches_the_log_only_the_audit_database_keeps_it(tmp_path):
    """Under systemd stderr is the journal, which keeps lines beyond store.retention_days and
    `install.sh --purge`: a screening's outcome, label and probabilities must not be there."""
    import json
    import sqlite3

    from edge.decision import Outcome

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "kiosk.yaml").write_text("state_dir: state\nsource:\n  kind: demo\n  fps: 30\npresence:\n  learn_s: 0.2\n"
                                     "decision:\n  frames: 5\n  best_frames: 4\n  result_hold_s: 0.5\n  leave_after_s: 0.2\n"
                                     "web:\n  enabled: false\n")
    result = run(["kiosk", "run", "--no-view", "--max-screenings", "3", "--config", "kiosk.yaml"], home, work)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(work / "state" / "audit.sqlite") as db:
        rows = db.execute("SELECT id, outcome, label, probabilities FROM screenings").fetchall()
    assert len(rows) == 3
    log = result.stderr + result.stdout
    for uuid, outcome, label, probabilities in rows:
        assert uuid[:8] in log  # that it happened (and which row) is logged
        assert outcome not in log and label not in log
        assert not any(name in log for name in json.loads(probabilities))  # no class named, let alone its probability
    assert not any(o.value in log for o in Outcome)
