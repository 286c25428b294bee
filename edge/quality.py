"""The quality gate: frame_quality figures of the target box -> what the kiosk may do with
the frame. Only an "ok" frame is ever classified; the rest become guidance or idle."""

from __future__ import annotations

from edge.config import QualityConfig

ABSENT, OK = "absent", "ok"
GUIDANCE = {
    "too_dark": "Too dark: please move into the light",
    "too_bright": "Too bright: please step out of direct light",
    "blurred": "Please hold still",
    "too_far": "Please come closer to the camera",
}


def verdict(q: dict[str, float], cfg: QualityConfig) -> str:
    """'absent' (no skin in the box), a GUIDANCE key, or 'ok'."""
    if q["skin_fraction"] < cfg.min_skin_fraction:
        return ABSENT
    if q["brightness"] < cfg.min_brightness or q["dark_fraction"] > cfg.max_clipped_fraction:
        return "too_dark"
    if q["brightness"] > cfg.max_brightness or q["bright_fraction"] > cfg.max_clipped_fraction:
        return "too_bright"
    if q["sharpness"] < cfg.min_sharpness:
        return "blurred"
    if q["skin_fraction"] < cfg.close_skin_fraction:
        return "too_far"
    return OK


def box_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Fractional (x, y, w, h) -> pixel ROI of a width x height frame."""
    x, y, w, h = box
    return int(x * width), int(y * height), max(1, int(w * width)), max(1, int(h * height))
