"""The kiosk end to end on the demo source with the shipped int8 model: audit rows, clear
errors for a corrupt or mismatched model, and a clean SIGTERM mid-screening."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.config import load_config
from edge.engine import Engine
from edge.errors import ModelError
from edge.kiosk import Kiosk
from tests import last_wins

MODELS = Path(__file__).resolve().parents[2] / "models"
SCREENING_LOG = "INFO edge.kiosk: screening "


def config(tmp_path, extra=""):
    p = tmp_path / "kiosk.yaml"
    p.write_text(last_wins(f"kiosk_id: test-1\nstate_dir: state\nsource:\n  kind: demo\n  fps: 75\ndecision:\n  frames: 5\n"
                           f"  best_frames: 4\n  result_hold_s: 0.5\n  leave_after_s: 0.2\npresence:\n  learn_s: 0.2\n{extra}"))
    return p


def run_guarded(kiosk: Kiosk, seconds: float):
    """kiosk.run() until it stops by itself, or stopped after `seconds`: the test fails rather than hangs."""
    timer = threading.Timer(seconds, kiosk.stop)
    timer.start()
    try:
        return kiosk.run()
    finally:
        timer.cancel()


def rows(db_file):
    db = sqlite3.connect(db_file)
    try:
        return db.execute("SELECT kiosk_id, model_name, model_sha256, outcome, probabilities, frames FROM screenings").fetchall()
    finally:
        db.close()


def test_demo_run_writes_one_row_per_screening(tmp_path):
    cfg = load_config(config(tmp_path, "store:\n  keep_best_frame: true\n"))
    kiosk = Kiosk(cfg)
    status = kiosk.run(max_screenings=3)
    found = rows(cfg.state_dir / "audit.sqlite")
    assert status.screenings == 3 and len(found) == 3
    sha = kiosk.engine.sha256
    for kiosk_id, model, model_sha, outcome, probs, frames in found:
        assert (kiosk_id, model, model_sha, frames) == ("test-1", "fast-mpoxnet", sha, 4)  # the 4 sharpest of 5
        assert outcome in {"mpox_suspected", "other_rash_suspected", "no_rash_detected", "uncertain"}
        assert '"Monkeypox"' in probs
    assert len(list((cfg.state_dir / "frames").glob("*.jpg"))) == 3
    events = [k for (k,) in sqlite3.connect(cfg.state_dir / "audit.sqlite").execute("SELECT kind FROM events")]
    assert events[0] == "started" and events[-1] == "stopped" and "camera_ok" in events


def copy_model(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    for name in ("fast-mpoxnet-int8.xml", "fast-mpoxnet-int8.bin", "SHA256SUMS"):
        shutil.copy(MODELS / name, d / name)
    return d / "fast-mpoxnet-int8.xml"


def test_corrupt_model_is_refused_with_a_clear_error(tmp_path):
    xml = copy_model(tmp_path)
    with open(xml.with_suffix(".bin"), "r+b") as f:  # one flipped byte
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    result = CliRunner().invoke(mpox, ["kiosk", "run", "--no-view", "--config", str(config(tmp_path, f"model:\n  path: {xml}\n"))])
    assert result.exit_code == 1 and "does not match its checksum" in result.output and "Traceback" not in result.output


def test_unlisted_or_missing_model_is_refused(tmp_path):
    xml = copy_model(tmp_path)
    (xml.parent / "SHA256SUMS").write_text("")
    with pytest.raises(ModelError, match="not listed"):
        Kiosk(load_config(config(tmp_path, f"model:\n  path: {xml}\n")))
    result = CliRunner().invoke(mpox, ["check", "--config", str(config(tmp_path, f"model:\n  path: {tmp_path}/none.xml\n"))])
    assert result.exit_code == 1 and "FAIL model" in result.output and "model file not found" in result.output
    assert "OK   camera" in result.output


def test_model_with_other_labels_is_refused(tmp_path):
    import openvino as ov

    xml = copy_model(tmp_path)
    model = ov.Core().read_model(xml)
    model.set_rt_info("Chickenpox,Measles,Monkeypox", ["mpox", "labels"])  # 3 labels for 4 outputs
    odd = tmp_path / "odd.xml"
    ov.save_model(model, odd, compress_to_fp16=False)
    result = CliRunner().invoke(mpox, ["kiosk", "run", "--no-view", "--config",
                                       str(config(tmp_path, f"model:\n  path: {odd}\n  verify_checksum: false\n"))])
    assert result.exit_code == 1 and "expected output [1, 3]" in result.output


@pytest.mark.parametrize("key,value,words", [
    ("mpox_threshold", "nan", "mpox_threshold must be between 0 and 1"),
    ("mpox_threshold", "1.5", "mpox_threshold must be between 0 and 1"),
    ("std", "0.229,0,0.225", "std must be finite and non-zero"),
    ("mean", "inf,0.4,0.4", "mean must be finite"),
])
def test_model_metadata_that_would_break_the_run_is_refused(tmp_path, key, value, words):
    import openvino as ov

    xml = copy_model(tmp_path)
    model = ov.Core().read_model(xml)
    model.set_rt_info(value, ["mpox", key])
    odd = tmp_path / "odd.xml"
    ov.save_model(model, odd, compress_to_fp16=False)
    with pytest.raises(ModelError, match=words):
        Engine(odd)


def test_sigterm_during_a_screening_exits_cleanly_and_loses_no_row(tmp_path):
    cfg_file = config(tmp_path, "web:\n  enabled: false\n")  # no kiosk screen: nobody to tap "I agree"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "kiosk", "run", "--no-view", "--config", str(cfg_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    db_file = tmp_path / "state" / "audit.sqlite"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.time() + 90
    while time.time() < deadline and sum(SCREENING_LOG in x for x in lines) < 2:
        time.sleep(0.05)
    time.sleep(1.2)  # into the next visit: the person is approaching or being assessed
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines)
    logged = sum(SCREENING_LOG in x for x in lines)
    db = sqlite3.connect(db_file)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM screenings").fetchone()[0] == logged >= 2
    assert db.execute("SELECT kind FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0] == "stopped"


def test_a_video_that_does_not_loop_is_played_once_and_the_kiosk_stops(tmp_path):
    import cv2
    import numpy as np

    video = tmp_path / "visit.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 240))
    for _ in range(30):
        writer.write(np.full((240, 320, 3), 90, np.uint8))
    writer.release()
    p = tmp_path / "kiosk.yaml"
    p.write_text(f"state_dir: state\nsource:\n  kind: file\n  target: {video}\n  fps: 0\n  loop: false\n")
    kiosk = Kiosk(load_config(p))
    status = run_guarded(kiosk, 60)
    assert kiosk.capture.ended and status.outages == 0 and status.frames == 30  # a recording loses no frame


def test_a_screening_submitted_from_another_thread_is_recorded_but_not_shown(tmp_path):
    """A photo checked on the web page: the loop publishes it (audit row marked as an upload),
    the kiosk's own status and screen never show it."""
    import numpy as np

    from edge.decision import Origin, screen_picture
    from edge.events import ScreeningDone

    cfg = load_config(config(tmp_path))
    kiosk = Kiosk(cfg)
    seen = []
    kiosk.outputs.subscribe(type("Rec", (), {"on_event": lambda self, e: seen.append(e), "on_status": lambda self, s: None})())
    upload = screen_picture(np.array([0.1, 0.1, 0.7, 0.1]), kiosk.engine.info.labels, kiosk.model.mpox_threshold,
                            cfg.decision, time.monotonic())
    threading.Thread(target=kiosk.submit, args=(upload,)).start()
    status = kiosk.run(max_frames=30)
    assert any(isinstance(e, ScreeningDone) and e.screening.id == upload.id for e in seen)
    assert status.last_result is None or status.last_result.id != upload.id
    db = sqlite3.connect(cfg.state_dir / "audit.sqlite")
    assert db.execute("SELECT outcome, origin, frames FROM screenings WHERE id = ?", (upload.id,)).fetchone() == \
        ("mpox_suspected", Origin.UPLOAD.value, 1)


def test_with_consent_asked_the_kiosk_screens_once_per_i_agree(tmp_path):
    """The kiosk screen's rule (web.consent): people come and go on the demo source, but nothing
    is classified or recorded until "I agree"; then one screening, and it waits again."""
    from edge.decision import State
    from edge.quality import Verdict

    cfg = load_config(config(tmp_path, "store:\n  keep_best_frame: true\n"))
    kiosk = Kiosk(cfg)
    kiosk.ask_consent()
    assert kiosk.status.state == State.AWAITING_CONSENT and kiosk.machine.message == "Tap 'I agree' on the screen to start"
    seen = {"waiting_ok": 0, "after": 0}

    class Door:  # on the loop's thread: taps "I agree" once someone has stood there unscreened
        def on_event(self, event):
            pass

        def on_status(self, st):
            if st.state == State.AWAITING_CONSENT and st.verdict == Verdict.OK:
                seen["waiting_ok"] += 1  # a good picture of a lesion, not looked at
            if st.screenings == 0 and seen["waiting_ok"] >= 20 and "agreed" not in seen:
                seen["before"] = (st.classified, rows(cfg.state_dir / "audit.sqlite"))
                seen["agreed"] = True
                kiosk.agree()
            if st.screenings == 1 and st.state == State.AWAITING_CONSENT and st.verdict == Verdict.OK:
                seen["after"] += 1  # the next person, who has not agreed
                if seen["after"] >= 20:
                    kiosk.stop()

    kiosk.outputs.subscribe(Door())
    status = run_guarded(kiosk, 120)
    assert seen["before"] == (0, [])  # people were there: no frame classified, no row
    assert seen["after"] >= 20 and status.screenings == 1 and len(rows(cfg.state_dir / "audit.sqlite")) == 1
    assert len(list((cfg.state_dir / "frames").glob("*.jpg"))) == 1  # only the screening's frame was kept


def test_a_kiosk_stuck_on_something_it_takes_for_a_person_says_so_and_starts_over(tmp_path):
    """A picture left in the box (a poster put up, never leaving): screened once, then held as
    a result for ever. Past decision.stuck_after_s the kiosk says it was stuck (status, /healthz
    503 with the reason, the dashboard), learns the empty scene again and returns to idle."""
    from dataclasses import replace

    import cv2
    import numpy as np

    from edge import synthetic
    from edge.capture import Frame
    from edge.config import DecisionConfig, KioskConfig, PresenceConfig
    from edge.decision import State
    from edge.web.live import state_is_live

    cfg = KioskConfig(state_dir=tmp_path, decision=DecisionConfig(stuck_after_s=20.0),
                      presence=PresenceConfig(relearn_s=3600.0))
    kiosk = Kiosk(cfg, engine=Engine(MODELS / "fast-mpoxnet.xml"))
    rng = np.random.default_rng(0)
    wall = synthetic.wall("room", 320, 180, rng)
    poster = wall.copy()
    demo = sorted((Path(__file__).resolve().parents[2] / "edge" / "demo").glob("*.png"))
    synthetic.paste(poster, cv2.imread(str(demo[0])), 160, 90, 110)
    noise = synthetic.NoiseBank(320, 180, 2.0, rng)
    states = []
    try:
        for i in range(15 * 40):
            t = i / 15
            kiosk.process(Frame(noise.add(wall if t < 1.0 else poster, i), t, i))
            states.append(kiosk.machine.state)
    finally:
        kiosk.store.close()
    status = kiosk.status
    assert status.screenings == 1 and State.RESULT in states
    assert status.recoveries == 1 and status.stuck.startswith("result for")
    assert states[-1] == State.IDLE and states[-15 * 5:] == [State.IDLE] * (15 * 5)  # the poster is the scene now
    ok, reason = state_is_live(replace(status, camera_ok=True), now=0.0, beat=0.0)  # (frames fed by hand: no capture)
    assert not ok and reason.startswith("stuck: result for")


def test_with_nothing_to_classify_the_kiosk_dozes_whoever_is_in_front_and_the_tap_wakes_it(tmp_path):
    """Awaiting "I agree" and showing a result, no frame is classified: the kiosk looks at
    presence.idle_fps frames a second though someone stands in front. The tap wakes it to
    every frame at once, and the screening that follows is made of every frame."""
    from dataclasses import replace

    import cv2
    import numpy as np

    from edge.capture import Frame
    from edge.config import KioskConfig
    from edge.decision import State
    from edge.visits import VisitCamera, plan_visit

    cfg = KioskConfig(state_dir=tmp_path)
    kiosk = Kiosk(cfg, engine=Engine(MODELS / "fast-mpoxnet.xml"))
    kiosk.ask_consent()
    picture = cv2.imread(str(sorted((Path(__file__).resolve().parents[2] / "edge" / "demo").glob("monkeypox*.png"))[0]))
    plan = replace(plan_visit(picture, np.random.default_rng(0)), hold_s=12.0, empty_s=2.0)
    camera = VisitCamera(plan, 320, 240, cfg.quality.box)
    tap = camera.hold_start() + 3.0  # someone has stood in front, holding the lesion up, for 3 s
    looked: list[tuple[float, State]] = []
    observe = kiosk.scene.observe
    kiosk.scene.observe = lambda *a, **k: looked.append((a[2], kiosk.machine.state)) or observe(*a, **k)
    frames, screened = 0, []
    try:
        t = 0.0
        while t < camera.end:
            if frames == round(tap * 15):
                kiosk.machine.agree(t)
            if kiosk.process(Frame(camera.frame(t), t, frames)) is not None:
                screened.append(t)
            camera.react(t, kiosk.status.verdict, kiosk.machine.state == State.RESULT)
            frames += 1
            t = frames / 15
    finally:
        kiosk.store.close()
    assert len(screened) == 1

    def looks(start, end):
        return [s for u, s in looked if start <= u < end]

    waiting = looks(camera.hold_start(), tap)
    assert set(waiting) == {State.AWAITING_CONSENT} and 13 <= len(waiting) <= 17  # 5 a second, someone in front
    assert len(looks(tap, screened[0] + 0.01)) == round((screened[0] - tap) * 15) + 1  # every frame from the tap
    showing = looks(screened[0] + 0.01, screened[0] + 2.01)
    assert set(showing) == {State.RESULT} and 8 <= len(showing) <= 12  # 5 a second while the result shows
