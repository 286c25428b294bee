"""The screening state machine on scripted quality/probability sequences."""

import numpy as np
import pytest

from edge.config import DecisionConfig
from edge.decision import ADVICE, CONSENT_MESSAGE, IDLE_MESSAGE, Outcome, ScreeningMachine, State
from edge.quality import GUIDANCE, Verdict

ABSENT, OK = Verdict.ABSENT, Verdict.OK

LABELS = ("Chickenpox", "Measles", "Monkeypox", "Normal")
CFG = DecisionConfig(frames=5, best_frames=5, settle_s=0.0, result_hold_s=3.0, leave_after_s=1.0, guidance_timeout_s=4.0, min_confidence=0.55, min_agreement=0.6)
MPOX = np.array([0.05, 0.05, 0.85, 0.05])
NORMAL = np.array([0.05, 0.05, 0.02, 0.88])
MEASLES = np.array([0.1, 0.8, 0.02, 0.08])
DT = 0.1


def machine(threshold=0.3):
    return ScreeningMachine(CFG, LABELS, threshold)


def feed(m, t, verdict, probs=None, n=1):
    done = None
    for _ in range(n):
        t += DT
        s = m.observe(t, verdict, probs, {"sharpness": 50.0, "fill": 0.8})
        done = s or done
    return t, done


def test_idle_stays_idle_without_a_person():
    m = machine()
    t, s = feed(m, 0, ABSENT, n=50)
    assert m.state == State.IDLE and s is None and m.message == IDLE_MESSAGE


def test_full_cycle_idle_guiding_assessing_result_idle():
    m = machine()
    t, _ = feed(m, 0, Verdict.TOO_FAR)
    assert m.state == State.GUIDING and m.message == GUIDANCE[Verdict.TOO_FAR]
    t, _ = feed(m, t, OK, NORMAL)
    assert m.state == State.ASSESSING and m.progress == (1, 5)
    t, s = feed(m, t, OK, NORMAL, n=4)
    assert m.state == State.RESULT and s.outcome == Outcome.NO_RASH and s.frames == 5 and s.agreement == 1.0
    assert s.probabilities["Normal"] == pytest.approx(0.88) and s.quality["sharpness"] == 50.0
    t, _ = feed(m, t, ABSENT, n=20)  # 2 s: gone, but the result is still held
    assert m.state == State.RESULT
    t, _ = feed(m, t, ABSENT, n=15)
    assert m.state == State.IDLE


def test_result_held_while_the_person_stays_then_no_second_screening():
    m = machine()
    t, s = feed(m, 0, OK, MPOX, n=5)
    assert s.outcome == Outcome.MPOX
    assert not m.needs_probabilities  # the kiosk skips inference while the result is shown
    t, again = feed(m, t, OK, None, n=100)  # still standing there: no new screening
    assert again is None and m.state == State.RESULT
    t, _ = feed(m, t, ABSENT, n=15)
    assert m.state == State.IDLE and m.needs_probabilities


def test_mpox_threshold_decides_before_the_most_likely_class():
    low_mpox = np.array([0.05, 0.05, 0.35, 0.55])
    t, s = feed(machine(threshold=0.3), 0, OK, low_mpox, n=5)
    assert s.outcome == Outcome.MPOX and s.label == "Monkeypox"
    t, s = feed(machine(threshold=0.5), 0, OK, low_mpox, n=5)
    assert s.outcome == Outcome.NO_RASH


def test_other_rash_and_low_confidence_abstains():
    t, s = feed(machine(), 0, OK, MEASLES, n=5)
    assert s.outcome == Outcome.OTHER_RASH and s.label == "Measles"
    unsure = np.array([0.3, 0.25, 0.1, 0.35])
    t, s = feed(machine(), 0, OK, unsure, n=5)
    assert s.outcome == Outcome.UNCERTAIN and s.label == "Normal"


def test_a_model_that_knows_other_conditions_sends_them_to_staff_as_such():
    labels = ("Chickenpox", "Measles", "Monkeypox", "Normal", "Other")
    m = ScreeningMachine(CFG, labels, 0.3)
    t, s = feed(m, 0, OK, np.array([0.04, 0.03, 0.1, 0.03, 0.8]), n=5)
    assert s.outcome == Outcome.OTHER_CONDITION and s.label == "Other"
    assert s.outcome != Outcome.NO_RASH and "staff" in ADVICE[s.outcome]
    m = ScreeningMachine(CFG, labels, 0.3)
    t, s = feed(m, 0, OK, np.array([0.02, 0.02, 0.35, 0.01, 0.6]), n=5)  # mpox at its threshold comes first
    assert s.outcome == Outcome.MPOX


def test_confidence_is_counted_among_the_classes_left_once_mpox_is_ruled_out():
    # 0.5 of all, but 0.77 of what is not mpox: mpox is below its threshold, normal is clear.
    probs = np.array([0.1, 0.05, 0.35, 0.5])
    t, s = feed(machine(threshold=0.5), 0, OK, probs, n=5)
    assert s.outcome == Outcome.NO_RASH
    t, s = feed(machine(threshold=0.5), 0, OK, np.array([0.3, 0.2, 0.2, 0.3]), n=5)
    assert s.outcome == Outcome.UNCERTAIN  # 0.3 of 0.8: a real doubt between the rest


def test_disagreeing_frames_abstain():
    m = machine()
    t = 0
    for probs in (NORMAL, MEASLES, NORMAL, MEASLES, NORMAL):
        t, s = feed(m, t, OK, probs)
    assert s.label == "Normal" and s.agreement == pytest.approx(0.6)
    m2 = ScreeningMachine(DecisionConfig(**{**CFG.model_dump(), "min_agreement": 0.7}), LABELS, 0.3)
    t = 0
    for probs in (NORMAL, MEASLES, NORMAL, MEASLES, NORMAL):
        t, s = feed(m2, t, OK, probs)
    assert s.outcome == Outcome.UNCERTAIN


def test_person_leaving_mid_assessment_discards_it():
    m = machine()
    t, _ = feed(m, 0, OK, NORMAL, n=3)
    t, _ = feed(m, t, ABSENT, n=15)
    assert m.state == State.IDLE and m.abandoned == 1 and m.progress == (0, 5)
    t, s = feed(m, t, OK, MPOX, n=4)
    assert s is None and m.progress == (4, 5)  # a fresh assessment, the old frames gone


def test_brief_gap_and_bad_frames_keep_the_assessment():
    m = machine()
    t, _ = feed(m, 0, OK, NORMAL, n=3)
    t, _ = feed(m, t, ABSENT, n=3)  # 0.3 s: shorter than leave_after_s
    t, _ = feed(m, t, Verdict.BLURRED, n=6)
    assert m.state == State.GUIDING and m.message == GUIDANCE[Verdict.BLURRED]
    t, s = feed(m, t, OK, NORMAL, n=2)
    assert s is not None and s.frames == 5


def test_guidance_that_lasts_too_long_drops_old_frames():
    m = machine()
    t, _ = feed(m, 0, OK, NORMAL, n=3)
    t, _ = feed(m, t, Verdict.TOO_DARK, n=50)  # 5 s: more than a brief gap plus guidance_timeout_s
    t, _ = feed(m, t, OK, NORMAL)
    assert m.progress == (1, 5)


def test_best_frame_is_the_sharpest_and_only_when_given():
    m = machine()
    t = 0
    for sharp in (10.0, 90.0, 30.0, 20.0, 5.0):
        t += DT
        s = m.observe(t, OK, NORMAL, {"sharpness": sharp}, np.full((2, 2, 3), int(sharp), np.uint8))
    assert s.best_frame[0, 0, 0] == 90
    t, s = feed(machine(), 0, OK, NORMAL, n=5)
    assert s.best_frame is None


def test_ok_frame_without_probabilities_is_a_programming_error():
    with pytest.raises(ValueError):
        machine().observe(0.1, OK, None)


def test_frames_count_only_once_the_picture_has_settled():
    m = ScreeningMachine(DecisionConfig(**{**CFG.model_dump(), "settle_s": 0.3}), LABELS, 0.3)
    t, _ = feed(m, 0, Verdict.MOVING, n=5)  # the approach
    t, _ = feed(m, t, OK, MPOX, n=3)  # 0.0, 0.1, 0.2 s into the run: settling
    assert m.state == State.ASSESSING and m.progress == (0, 5)
    t, s = feed(m, t, OK, NORMAL, n=6)
    assert s.outcome == Outcome.NO_RASH and s.probabilities["Monkeypox"] == pytest.approx(0.02)


def test_a_twitch_keeps_the_assessment_on_screen_and_skips_its_frame():
    m = ScreeningMachine(DecisionConfig(**{**CFG.model_dump(), "settle_s": 0.3}), LABELS, 0.3)
    t, _ = feed(m, 0, OK, NORMAL, n=6)
    assert m.progress == (3, 5)
    t, _ = feed(m, t, Verdict.MOVING, n=2)  # 0.2 s: shorter than a brief gap
    assert m.state == State.ASSESSING and m.progress == (3, 5)
    t, s = feed(m, t, OK, NORMAL, n=2)  # the run of good frames goes on: no new settling
    assert s is not None and s.frames == 5


def test_the_sharpest_frames_decide():
    m = ScreeningMachine(DecisionConfig(**{**CFG.model_dump(), "frames": 6, "best_frames": 3}), LABELS, 0.3)
    t = 0
    for sharp, probs in ((80.0, NORMAL), (5.0, MPOX), (90.0, NORMAL), (6.0, MPOX), (70.0, NORMAL), (4.0, MPOX)):
        t += DT
        s = m.observe(t, OK, probs, {"sharpness": sharp})
    assert s.outcome == Outcome.NO_RASH and s.frames == 3 and s.quality["sharpness"] == pytest.approx(80.0)


def test_best_frames_cannot_exceed_frames():
    with pytest.raises(ValueError):
        DecisionConfig(frames=4, best_frames=5)


@pytest.mark.parametrize("probs", [MPOX, NORMAL, MEASLES, np.array([0.4, 0.3, 0.1, 0.2]), np.array([0.3, 0.3, 0.29, 0.11])])
def test_an_uploaded_picture_is_judged_by_the_camera_rule(probs):
    from edge.decision import Origin, screen_picture

    m = machine(threshold=0.3)
    t, camera = feed(m, 0, OK, probs, n=12)  # the same probabilities on every frame
    upload = screen_picture(probs, LABELS, 0.3, CFG, t=5.0)
    assert (upload.outcome, upload.label) == (camera.outcome, camera.label)
    assert upload.probabilities == pytest.approx(camera.probabilities)
    assert upload.origin == Origin.UPLOAD and camera.origin == Origin.CAMERA and upload.frames == 1


def consenting_machine(lapse_s=2.0):
    m = machine()
    m.ask_consent(lapse_s, 0.0)
    return m


def test_with_consent_asked_nothing_is_screened_until_i_agree():
    m = consenting_machine()
    assert m.state == State.AWAITING_CONSENT and m.message == CONSENT_MESSAGE and not m.needs_probabilities
    t, s = feed(m, 0, OK, None, n=50)  # someone shows a lesion: no probabilities asked, no screening
    assert s is None and m.state == State.AWAITING_CONSENT and m.progress == (0, 5)
    m.agree(t)
    assert m.state == State.IDLE and m.needs_probabilities
    t, s = feed(m, t, OK, MPOX, n=5)
    assert s is not None and m.state == State.RESULT


def test_a_consent_is_good_for_one_screening():
    m = consenting_machine()
    m.agree(0.0)
    t, s = feed(m, 0, OK, NORMAL, n=5)
    assert s is not None
    t, _ = feed(m, t, ABSENT, n=40)  # the person leaves after the result
    assert m.state == State.AWAITING_CONSENT and m.message == CONSENT_MESSAGE
    t, again = feed(m, t, OK, None, n=50)  # the next person, without agreeing
    assert again is None and m.state == State.AWAITING_CONSENT


def test_i_agree_during_a_result_is_the_next_persons():
    m = consenting_machine(lapse_s=10.0)
    m.agree(0.0)
    t, s = feed(m, 0, OK, NORMAL, n=5)
    m.agree(t)  # the screen went back to its welcome and the next person tapped
    t, _ = feed(m, t, ABSENT, n=40)
    assert m.state == State.IDLE
    t, s = feed(m, t, OK, MEASLES, n=5)
    assert s is not None


def test_a_consent_lapses_when_nobody_is_screened_after_it():
    m = consenting_machine(lapse_s=2.0)
    m.agree(0.0)
    t, _ = feed(m, 0, ABSENT, n=15)
    assert m.state == State.IDLE
    t, _ = feed(m, t, ABSENT, n=10)  # 2.5 s idle: the screen is back at its welcome, so is the kiosk
    assert m.state == State.AWAITING_CONSENT
    t, s = feed(m, t, OK, None, n=20)
    assert s is None


def test_a_consent_lapses_from_the_tap_whatever_the_kiosk_shows_meanwhile():
    """The person who tapped does not wait for minutes: a kiosk guiding something that never
    settles, or showing a result, does not keep their consent for whoever comes later."""
    m = consenting_machine(lapse_s=2.0)
    m.agree(0.0)
    t, _ = feed(m, 0, Verdict.MOVING, n=15)
    assert m.state == State.GUIDING
    t, _ = feed(m, t, Verdict.MOVING, n=6)  # 2.1 s after the tap
    assert m.state == State.AWAITING_CONSENT
    t, s = feed(m, t, OK, None, n=20)
    assert s is None and m.state == State.AWAITING_CONSENT


def test_a_consent_holds_while_its_screening_is_under_way():
    m = consenting_machine(lapse_s=2.0)
    m.agree(0.0)
    t, _ = feed(m, 0, ABSENT, n=15)
    t, s = feed(m, t, OK, MPOX, n=5)  # assessing across the lapse: finishes
    assert s is not None and m.state == State.RESULT


def test_an_episode_that_outlasts_any_screening_is_stuck_and_recovered():
    """Something taken for a person and never leaving (a result held for minutes): stuck()
    names it once the episode is longer than stuck_after_s; recover() starts over."""
    cfg = CFG.model_copy(update={"stuck_after_s": 30.0})
    m = ScreeningMachine(cfg, LABELS, 0.3)
    t, s = feed(m, 0, OK, MPOX, n=5)
    assert s is not None and m.stuck(t) is None
    t, _ = feed(m, t, OK, MPOX, n=250)  # "present" for 25 s more: the result stays
    assert m.state == State.RESULT and m.stuck(t) is None
    t, _ = feed(m, t, OK, MPOX, n=60)
    why = m.stuck(t)
    assert why is not None and why.startswith("result for 3")
    m.recover(t)
    assert m.state == State.IDLE and m.recoveries == 1 and m.stuck(t) is None
    t, s = feed(m, t, ABSENT, n=5)
    assert m.state == State.IDLE


def test_stuck_after_must_outlast_a_result():
    with pytest.raises(ValueError):
        DecisionConfig(result_hold_s=8.0, leave_after_s=1.5, stuck_after_s=9.0)


def test_without_consent_asked_agree_changes_nothing():
    m = machine()
    m.agree(0.0)
    t, s = feed(m, 0, OK, NORMAL, n=5)
    assert s is not None
    t, _ = feed(m, t, ABSENT, n=40)
    assert m.state == State.IDLE
