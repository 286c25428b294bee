"""One screening, frame by frame: IDLE -> GUIDING -> ASSESSING -> RESULT -> IDLE.

The machine is fed one observation per processed frame (time, quality verdict, and class
probabilities for good frames) and knows nothing of cameras or models, so it is tested on
scripted sequences. Good frames count only once they have come in a row for `settle_s`
(the approach is over and the picture is steady); a screening collects `frames` of them and
averages the probabilities of the `best_frames` sharpest. The mpox threshold (chosen for
sensitivity) decides mpox first; frames that disagree or a low confidence give "uncertain:
please see staff". A person leaving mid-assessment discards it.

When the kiosk screen asks for consent (ask_consent), the machine starts in AWAITING_CONSENT
and screens nothing until agree(): the consent is good for one screening, and lapses when the
result is shown or `lapse_s` after the tap unless a screening is under way by then (whatever
the kiosk was showing meanwhile: a consent is for the person who tapped, who does not wait
for minutes), as the kiosk screen goes back to its welcome then.

No screening episode (guiding, assessing, a result) lasts `stuck_after_s`: a person is
guided, screened and reads the result in well under a minute. One that does is something
the kiosk takes for a person that is not one; `stuck()` names it, and `recover()` returns
to the start (the kiosk then learns its empty scene again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from edge.config import DecisionConfig, KioskConfig
from edge.contract import MPOX_LABEL, OTHER_LABEL, decide
from edge.quality import GUIDANCE, Verdict


class State(str, Enum):
    AWAITING_CONSENT = "awaiting_consent"  # nobody has tapped "I agree": nothing is classified or recorded
    IDLE = "idle"
    GUIDING = "guiding"
    ASSESSING = "assessing"
    RESULT = "result"


class Outcome(str, Enum):
    MPOX = "mpox_suspected"
    OTHER_RASH = "other_rash_suspected"  # chickenpox or measles
    OTHER_CONDITION = "other_condition_suspected"  # a skin condition that is none of the model's named rashes
    NO_RASH = "no_rash_detected"
    UNCERTAIN = "uncertain"


class Origin(str, Enum):
    """Where a screening's picture came from."""

    CAMERA = "camera"  # the kiosk's own camera, frame by frame
    UPLOAD = "upload"  # a photo sent to the check page


ADVICE = {
    Outcome.MPOX: "Possible mpox. Please see the staff now, and avoid close contact until you do.",
    Outcome.OTHER_RASH: "Possible chickenpox or measles. Please see the staff.",
    Outcome.OTHER_CONDITION: "Another skin condition, not mpox, chickenpox or measles. Please see the staff about it.",
    Outcome.NO_RASH: "No rash detected. If you feel unwell, please see the staff.",
    Outcome.UNCERTAIN: "The result is uncertain. Please see the staff.",
}
# Played back, not a person in front of the camera: nobody could tap "I agree", and what was
# recorded is screened as it plays (the staff replaying it decided that).
RECORDINGS = frozenset({"file", "folder"})
IDLE_MESSAGE = "Show the skin lesion to the camera, inside the box"
CONSENT_MESSAGE = "Tap 'I agree' on the screen to start"
NORMAL_LABEL = "Normal"
BRIEF_GAP_S = 0.5  # a bad frame or two while assessing (a twitch) does not interrupt it on screen


def consent_asked(cfg: KioskConfig) -> bool:
    """The consent rule, for a kiosk with a screen that offers "I agree": each screening needs
    one tap (web.consent), except on a recording. Good for decision.consent_lapse_s."""
    return cfg.web.consent and cfg.source.kind not in RECORDINGS


@dataclass
class Screening:
    """One completed screening: the audit log's row."""

    id: str
    started: float
    finished: float
    outcome: Outcome
    label: str  # the model's class for the averaged probabilities
    probabilities: dict[str, float]
    frames: int  # frames averaged (the sharpest of those collected)
    agreement: float  # share of those frames whose own decision matches `label`
    quality: dict[str, float]  # mean of each quality figure over the frames used
    best_frame: np.ndarray | None = None  # the sharpest frame, only when frames are kept
    origin: Origin = Origin.CAMERA
    mpox_threshold: float | None = None  # the threshold the outcome was decided at (edge/models.py resolves it)


@dataclass
class _Assessment:
    started: float
    probs: list[np.ndarray] = field(default_factory=list)
    quality: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, np.ndarray | None] = (-1.0, None)


class ScreeningMachine:
    def __init__(self, cfg: DecisionConfig, labels: tuple[str, ...], mpox_threshold: float) -> None:
        self.cfg, self.labels, self.threshold = cfg, labels, mpox_threshold
        self.state = State.IDLE
        self.message = IDLE_MESSAGE
        self.last: Screening | None = None
        self.abandoned = 0  # assessments discarded because the person left
        self._assessment: _Assessment | None = None
        self._last_present = 0.0
        self._last_ok = float("-inf")
        self._ok_since: float | None = None  # start of the current run of good frames
        self._since = 0.0  # when the current state began
        self._busy_since: float | None = None  # when the machine last left IDLE/AWAITING_CONSENT
        self.recoveries = 0  # episodes ended by recover()
        self.consent_lapse_s: float | None = None  # None: no consent asked (no kiosk screen, or web.consent off)
        self._agreed_at: float | None = None  # when "I agree" was tapped, until its one screening is done

    @property
    def needs_probabilities(self) -> bool:
        """False while a result is shown (saves the inference) and before consent."""
        return self.state not in (State.RESULT, State.AWAITING_CONSENT)

    def ask_consent(self, lapse_s: float, t: float) -> None:
        """From now on each screening needs agree() first (before the first frame)."""
        self.consent_lapse_s, self._agreed_at = lapse_s, None
        self._assessment = None
        self._to(State.AWAITING_CONSENT, t, CONSENT_MESSAGE)

    def agree(self, t: float) -> None:
        """The person tapped "I agree": the next screening may start. Tapped during a result,
        it is the next person's and holds once the result is over."""
        if self.consent_lapse_s is None:
            return
        self._agreed_at = t
        if self.state == State.AWAITING_CONSENT:
            self._to(State.IDLE, t, IDLE_MESSAGE)

    def _idle(self, t: float) -> None:
        """Back to the start: IDLE, or AWAITING_CONSENT when consent is asked and not given."""
        if self.consent_lapse_s is not None and self._agreed_at is None:
            self._to(State.AWAITING_CONSENT, t, CONSENT_MESSAGE)
        else:
            self._to(State.IDLE, t, IDLE_MESSAGE)

    @property
    def progress(self) -> tuple[int, int]:
        return (len(self._assessment.probs) if self._assessment else 0), self.cfg.frames

    def observe(self, t: float, verdict: Verdict, probs: np.ndarray | None = None, quality: dict[str, float] | None = None,
                frame: np.ndarray | None = None) -> Screening | None:
        """Advance on one frame; returns the Screening when one completes. One stage at a time:
        who is there, what the state allows, then a bad frame guides and a good one counts."""
        present = verdict != Verdict.ABSENT
        if present:
            self._last_present = t
        gone = not present and t - self._last_present >= self.cfg.leave_after_s
        if verdict != Verdict.OK and t - self._last_ok >= BRIEF_GAP_S:
            self._ok_since = None  # a twitch keeps the run of good frames; more starts it again
        if self._held(t, gone) or self._left(t, gone) or not present:
            return None  # nothing to screen (waiting, showing a result, or the person left); a brief gap keeps what is under way
        if verdict != Verdict.OK:
            self._guide(t, verdict)
            return None
        if probs is None:
            raise ValueError("an OK frame needs its class probabilities")
        return self._count(t, probs, quality or {}, frame)

    def _held(self, t: float, gone: bool) -> bool:
        """True while the state screens nothing: waiting for consent, showing a result (until
        it has been shown long enough and the person left), or a consent that just lapsed."""
        if self.state == State.AWAITING_CONSENT:
            return True
        if self.state == State.RESULT:
            if t - self._since >= self.cfg.result_hold_s and gone:
                self._idle(t)
            return True
        if self._agreed_at is not None and self.consent_lapse_s is not None and self.state != State.ASSESSING and \
                t - self._agreed_at >= self.consent_lapse_s:
            self._agreed_at = None  # agreed, then nobody screened for lapse_s: the screen is back at its welcome
            self._assessment = None
            self._idle(t)
            return True
        return False

    def _left(self, t: float, gone: bool) -> bool:
        """The person left: an assessment under way is discarded (counted) and the kiosk starts over."""
        if not gone:
            return False
        if self.state == State.ASSESSING:
            self.abandoned += 1
        self._assessment = None
        if self.state != State.IDLE:
            self._idle(t)
        return True

    def _guide(self, t: float, verdict: Verdict) -> None:
        """A frame not good enough to judge: say what to change, unless it is a twitch mid-assessment."""
        if self.state == State.ASSESSING and t - self._last_ok < BRIEF_GAP_S:
            return  # a twitch: the frame is skipped, the assessment goes on
        if self.state != State.GUIDING:
            self._to(State.GUIDING, t, "")
        self.message = GUIDANCE[verdict]
        if t - self._since >= self.cfg.guidance_timeout_s:
            self._assessment = None  # frames this old no longer describe what is shown now

    def _count(self, t: float, probs: np.ndarray, quality: dict[str, float], frame: np.ndarray | None) -> Screening | None:
        """A good frame: it counts once the approach is over; the last one needed concludes."""
        self._last_ok = t
        if self._ok_since is None:
            self._ok_since = t
        if self.state != State.ASSESSING:
            self._to(State.ASSESSING, t, "Hold still: checking")
        if t - self._ok_since < self.cfg.settle_s:
            return None  # still settling after the approach: not a frame to judge by
        if self._assessment is None:
            self._assessment = _Assessment(started=t)
        a = self._assessment
        a.probs.append(np.asarray(probs, np.float64))
        a.quality.append(dict(quality))
        if frame is not None and quality.get("sharpness", 0.0) > a.best[0]:
            a.best = (quality["sharpness"], frame.copy())
        if len(a.probs) < self.cfg.frames:
            return None
        screening = self._conclude(a, t)
        self._assessment = None
        self._agreed_at = None  # the consent was for this screening
        self.last = screening
        self._to(State.RESULT, t, ADVICE[screening.outcome])
        return screening

    def _to(self, state: State, since: float, message: str) -> None:
        if state in (State.IDLE, State.AWAITING_CONSENT):
            self._busy_since = None
        elif self._busy_since is None:
            self._busy_since = since
        self.state, self._since, self.message = state, since, message

    def stuck(self, t: float) -> str | None:
        """Why the machine is stuck at time t (an episode longer than stuck_after_s), or None."""
        if self._busy_since is None or t - self._busy_since < self.cfg.stuck_after_s:
            return None
        return f"{self.state.value} for {t - self._busy_since:.0f} s (a screening episode ends within {self.cfg.stuck_after_s:.0f} s)"

    def recover(self, t: float) -> None:
        """Back to the start after stuck(): whatever was under way is dropped (counted as
        abandoned), and the consent with it (the person who gave it is long gone)."""
        if self.state == State.ASSESSING:
            self.abandoned += 1
        self._assessment, self._ok_since, self._agreed_at = None, None, None
        self._last_present = float("-inf")
        self.recoveries += 1
        self._idle(t)

    def _conclude(self, a: _Assessment, t: float) -> Screening:
        sharpness = np.array([q.get("sharpness", 0.0) for q in a.quality])
        best = np.sort(np.argsort(-sharpness, kind="stable")[:self.cfg.best_frames])
        used = [a.quality[i] for i in best]
        j = judge(np.stack(a.probs)[best], self.labels, self.threshold, self.cfg)
        keys = sorted({k for q in used for k in q})
        quality = {k: float(np.mean([q[k] for q in used if k in q])) for k in keys}
        return Screening(id=str(uuid.uuid4()), started=a.started, finished=t, outcome=j.outcome, label=j.label,
                         probabilities=j.probabilities, frames=len(best), agreement=j.agreement, quality=quality,
                         best_frame=a.best[1], mpox_threshold=self.threshold)


def outcome_of(label: str) -> Outcome:
    """What a class means for the person: the one label -> outcome mapping (before doubt)."""
    if label == MPOX_LABEL:
        return Outcome.MPOX
    if label == OTHER_LABEL:
        return Outcome.OTHER_CONDITION
    return Outcome.NO_RASH if label == NORMAL_LABEL else Outcome.OTHER_RASH


@dataclass(frozen=True)
class Judgement:
    """What one or more frames' probabilities say, by the kiosk's rules."""

    outcome: Outcome
    label: str
    probabilities: dict[str, float]  # the frames' mean
    agreement: float  # share of frames whose own decision matches `label`


def judge(probs: np.ndarray, labels: tuple[str, ...], threshold: float, cfg: DecisionConfig) -> Judgement:
    """The one decision rule, for a camera screening's best frames ([n, classes]) and for a
    single uploaded picture ([classes]) alike: mpox at its threshold on the mean, else the
    likeliest class; low confidence (among the classes left once mpox is ruled out) or
    frames that disagree -> uncertain, never for mpox."""
    probs = np.atleast_2d(np.asarray(probs, np.float64))
    mean = probs.mean(0)
    label_idx = int(decide(mean, labels, threshold)[0])
    agreement = float((decide(probs, labels, threshold) == label_idx).mean())
    label = labels[label_idx]
    outcome = outcome_of(label)
    # An mpox suspicion is never softened: it already sends the person to the staff. Otherwise
    # mpox was ruled out by its threshold, so confidence is the label's share of the other
    # classes' probability: a mean of 0.25 mpox, 0.6 normal is a clear "no rash", not a doubt.
    if outcome != Outcome.MPOX:
        rest = 1.0 - mean[labels.index(MPOX_LABEL)] if MPOX_LABEL in labels else 1.0
        if mean[label_idx] < cfg.min_confidence * rest or agreement < cfg.min_agreement:
            outcome = Outcome.UNCERTAIN
    return Judgement(outcome, label, {k: float(p) for k, p in zip(labels, mean)}, agreement)


def screen_picture(probs: np.ndarray, labels: tuple[str, ...], threshold: float, cfg: DecisionConfig, t: float,
                   quality: dict[str, float] | None = None, picture: np.ndarray | None = None) -> Screening:
    """One uploaded picture as a Screening (origin: upload), by the same rule as the camera's.
    `t` is its time on the monotonic clock, as the camera's screenings are."""
    j = judge(probs, labels, threshold, cfg)
    return Screening(id=str(uuid.uuid4()), started=t, finished=t, outcome=j.outcome, label=j.label,
                     probabilities=j.probabilities, frames=1, agreement=j.agreement, quality=dict(quality or {}),
                     best_frame=picture, origin=Origin.UPLOAD, mpox_threshold=threshold)
