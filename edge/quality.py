"""The quality gate: what the scene shows (edge/scene.py) and the frame_quality figures of
the region shown -> what the kiosk may do with the frame. Only an OK frame is ever
classified; the rest become guidance or idle."""

from __future__ import annotations

from enum import Enum

from edge.config import PresenceConfig, QualityConfig
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


def box_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Fractional (x, y, w, h) -> pixel ROI of a width x height frame."""
    x, y, w, h = box
    return int(x * width), int(y * height), max(1, int(w * width)), max(1, int(h * height))
