"""A recorded screening video played by `mpox kiosk run` with a file source: screened as it
plays (nobody can tap "I agree" on a recording), on the recording's own clock, so any
playback speed gives the same decisions."""

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.config import QualityConfig
from edge.images import read_image
from edge.visits import VisitCamera, plan_visit

DEMO = Path(__file__).resolve().parents[2] / "edge" / "demo"
FPS = 15


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """One visit (edge/visits.py: empty room, approach, hold with tremor, leave) as an MJPG file."""
    picture = read_image(DEMO / "monkeypox5.png")
    camera = VisitCamera(plan_visit(picture, np.random.default_rng(4)), 640, 360, QualityConfig().box, FPS)
    video = tmp_path_factory.mktemp("recording") / "visit.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (640, 360))
    for n in range(int(camera.end * FPS)):
        writer.write(camera.frame(n / FPS))
    writer.release()
    return video


def play(recording: Path, folder: Path, fps: float) -> list[tuple]:
    """`mpox kiosk run` on the recording with the default config but for the speed (the screen on
    and asking consent, the recording played once), to the recording's end; the audit rows."""
    folder.mkdir()
    config = folder / "kiosk.yaml"
    config.write_text(f"state_dir: {folder / 'state'}\nsource:\n  kind: file\n  target: {recording}\n  fps: {fps}\n"
                      "web:\n  port: 0\n")
    result = CliRunner().invoke(mpox, ["kiosk", "run", "--config", str(config), "--no-view"])
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(folder / "state" / "audit.sqlite")
    try:
        return db.execute("SELECT outcome, label, probabilities, frames FROM screenings").fetchall()
    finally:
        db.close()


def test_a_recording_is_screened_without_consent_and_the_same_at_any_playback_speed(recording, tmp_path):
    as_recorded = play(recording, tmp_path / "at-15fps", FPS)
    fast = play(recording, tmp_path / "as-fast-as-possible", 0)
    assert len(as_recorded) == 1  # the visit's one screening, though nobody tapped "I agree"
    assert fast == as_recorded  # every frame, on the recording's clock: the very same decision
