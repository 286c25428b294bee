"""The quality gate: what the scene shows (edge/scene.py) and the frame_quality figures of
the region shown -> what the kiosk may do with the frame. Only an OK frame is ever
classified; the rest become guidance or idle."""

from __future__ import annotations

from enum import Enum

from edge.config import PresenceConfig, QualityConfig
from edge.preprocess import BRIGHT_LEVEL, DARK_LEVEL
from edge.scene import SceneView


class Verdict(str, Enum):
    ABSENT = "absent"  # nobody in the box (or the empty scene is still being learned)
    TOO_FAR = "too_far"
    MOVING = "moving"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    BLURRED = "blurred"
    OK = "ok"


GUIDANCE = {
    Verdict.TOO_FAR: "Please come closer to the camera",
    Verdict.MOVING: "Please hold still",
    Verdict.TOO_DARK: "Too dark: please move into the light",
    Verdict.TOO_BRIGHT: "Too bright: please step out of direct light",
    Verdict.BLURRED: "Please hold still: the picture is blurred",
}


def verdict(view: SceneView, q: dict[str, float], quality: QualityConfig, presence: PresenceConfig) -> Verdict:
    """The first problem of the frame, in the order a person can fix them, or OK. "Come
    closer" only when what is shown covers little of the box: the region is classified
    on its own, so a lesion filling part of the box is close enough."""
    if not view.present:
        return Verdict.ABSENT
    if view.fill < presence.close_fill:
        return Verdict.TOO_FAR
    if view.motion > presence.max_motion:
        return Verdict.MOVING
    if q["brightness"] < quality.min_brightness or q["dark_fraction"] > quality.max_clipped_fraction:
        return Verdict.TOO_DARK
    if q["brightness"] > quality.max_brightness or q["bright_fraction"] > quality.max_clipped_fraction:
        return Verdict.TOO_BRIGHT
    if q["sharpness"] < quality.min_sharpness:
        return Verdict.BLURRED
    return Verdict.OK


PICTURE_PROBLEMS = frozenset({Verdict.TOO_DARK, Verdict.TOO_BRIGHT, Verdict.BLURRED})


class Patience:
    """Light and focus problems that outlast their guidance while the person holds still
    are the picture's own: a pale hand on white paper, a soft photo, a window behind the
    person that no step fixes. After `accept_after_s` of them, frames are classified anyway
    (and marked relaxed in the screening's quality figures), so following the guidance always
    ends in a result. Never for a black or white field (nothing to see), and never for
    absence, distance or motion, which the person can fix; leaving or coming closer starts
    the clock again."""

    def __init__(self, accept_after_s: float) -> None:
        self.accept_after_s = accept_after_s
        self._since: float | None = None  # when the current run of light/focus problems began

    def observe(self, v: Verdict, q: dict[str, float], t: float) -> tuple[Verdict, bool]:
        """The gate's verdict on a frame at time t -> the verdict to act on, and whether it
        was relaxed to OK."""
        if v not in PICTURE_PROBLEMS:
            if v in (Verdict.ABSENT, Verdict.TOO_FAR):  # gone, or the picture will change as they come closer
                self._since = None
            return v, False  # good or moving frames in between keep the clock (light flickering at a limit, a tremor)
        if self._since is None:
            self._since = t
        if t - self._since >= self.accept_after_s and DARK_LEVEL < q["brightness"] < BRIGHT_LEVEL:
            return Verdict.OK, True
        return v, False


def box_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Fractional (x, y, w, h) -> pixel ROI of a width x height frame."""
    x, y, w, h = box
    return int(x * width), int(y * height), max(1, int(w * width)), max(1, int(h * height))
