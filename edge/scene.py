"""What is shown in the target box: presence, motion and framing, from a small thumbnail.

Presence is *change against the empty scene*, not skin colour. A colour rule fails on pale,
dark, reddened and lesion-covered skin and on black-and-white photos, and it fires on beige
and wooden walls; a kiosk's camera is fixed, so what matters is that something arrived in
front of it. The empty scene is learned when the box has been still for `learn_s` at
start, then follows light drift cell by cell wherever nothing is in front; a global exposure
or white-balance change is taken out by a per-channel gain measured on the cells outside the
box. Something that stays still for `relearn_s` while no screening is under way (a poster,
a moved chair) becomes part of the scene.

A blank field (a camera's black, grey or green warm-up frames, a lens cap, a dark room) is
never learned as the scene: against it, the real room would be "someone" and be screened.
When nearly the whole picture stays changed (lights switched, the camera knocked), the
scene is learned again: no person covers the whole frame.

The changed cells inside the box give the region that is classified (a square on the
largest changed blob, not the wall around it, and trimmed of the blob's edges: a person
centres the lesion, while the edges are arm, hand and sleeve), how much of the box it fills, and how much it
moved since the last frame (steadiness, for choosing the frames a screening uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config import PresenceConfig
from edge.preprocess import DARK_LEVEL

Roi = tuple[int, int, int, int]
GAIN_PAD = 4.0  # added to both sides of a ratio, so near-black cells do not give wild gains
MIN_OUTSIDE_SHARE = 0.2  # cells outside the box needed to measure gain there (else: all cells)
STILL_LEVELS = 4.0  # the box changed less than this (grey levels) since the last frame: still, for learning
BLANK_LEVELS = 1.5  # the cells' spread (grey levels, per channel) below which a picture is a blank field, not a scene
SCENE_CHANGED_SHARE = 0.8  # this share of all cells changed: the scene itself changed, not someone in front
SCENE_CHANGED_S = 2.0  # for this long: learn the scene again
CONTRAST_FLOOR = 4.0  # grey levels between neighbouring cells: below, a region is flat and noise is not motion


@dataclass(frozen=True)
class SceneView:
    """One frame's answer: is someone showing something, where, and how still."""

    present: bool
    region: Roi | None  # square pixel ROI of what is shown, inside the box
    fill: float  # share of the box the shown thing's bounding box covers
    motion: float  # how far the region's content moved since the previous frame, as a share of its side
    learning: bool = False  # the empty scene is not known yet


def thumbnail(image: np.ndarray, grid: int) -> np.ndarray:
    """float32 (gh, grid, 3) cell means of the frame: a few thousand numbers stand for it."""
    h, w = image.shape[:2]
    gh = max(1, round(grid * h / w))
    # 4x4 samples a cell (nearest, cheap), then their mean: 0.1 ms for 1280x720, where a
    # full area average reads every pixel for 0.9 ms.
    sampled = cv2.resize(image, (min(w, grid * 4), min(h, gh * 4)), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(sampled, (grid, gh), interpolation=cv2.INTER_AREA).astype(np.float32)


class SceneWatch:
    def __init__(self, cfg: PresenceConfig) -> None:
        self.cfg = cfg
        self.reference: np.ndarray | None = None  # the empty scene's thumbnail
        self._previous: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._still_since: float | None = None  # the box (a scene, not a blank field) still since: learning
        self._steady_since: float | None = None  # what is shown has not moved since
        self._scene_changed_since: float | None = None  # nearly every cell has differed from the scene since
        self._cells: tuple | None = None  # (box, box in cells, cells to measure gain on), per box

    def reset(self) -> None:
        self._previous = self._shape = self._cells = None
        self._forget_scene()

    def _forget_scene(self) -> None:
        """Learn the empty scene again, from the next still frames of this size."""
        self.reference = self._still_since = self._steady_since = self._scene_changed_since = None

    def observe(self, image: np.ndarray, box: Roi, t: float, assessing: bool = False, frames: int = 1) -> SceneView:
        """One frame (uint8 BGR) and the target box in pixels -> SceneView. `assessing`
        keeps a person being screened from becoming part of the scene; `frames`: how many
        camera frames this one stands for (a kiosk with nobody in front looks at few), so the
        empty scene follows light drift as fast per second as when every frame is seen."""
        h, w = image.shape[:2]
        if self._shape != (h, w):
            self.reset()
            self._shape = (h, w)
        cfg = self.cfg
        thumb = thumbnail(image, cfg.grid)
        gh, gw = thumb.shape[:2]
        prev, self._previous = self._previous, thumb
        if self._cells is None or self._cells[0] != box:
            self._cells = (box, *_box_cells(box, w, h, gw, gh))
        _, (bx0, by0, bx1, by1), outside = self._cells
        if self.reference is None:
            # Still where people show things: someone walking past or coming in from a side,
            # outside the box, does not keep the kiosk from learning the scene.
            still = prev is not None and _is_scene(thumb) and \
                _change(thumb[by0:by1, bx0:bx1], prev[by0:by1, bx0:bx1]) < STILL_LEVELS
            self._still_since = (self._still_since if self._still_since is not None else t) if still else None
            if self._still_since is not None and t - self._still_since >= cfg.learn_s:
                self.reference = thumb.copy()
            return SceneView(False, None, 0.0, float("inf"), learning=True)

        gain = np.clip(np.median((thumb[outside] + GAIN_PAD) / (self.reference[outside] + GAIN_PAD), 0), 0.5, 2.0)
        changed = np.abs(thumb - self.reference * gain).max(2) > cfg.cell_change
        if changed.mean() >= SCENE_CHANGED_SHARE:
            self._scene_changed_since = t if self._scene_changed_since is None else self._scene_changed_since
            if t - self._scene_changed_since >= SCENE_CHANGED_S:
                self._forget_scene()
                return SceneView(False, None, 0.0, float("inf"), learning=True)
        else:
            self._scene_changed_since = None
        # Cells where nothing is in front follow slow light drift.
        adapt = cfg.adapt if frames <= 1 else 1 - (1 - cfg.adapt) ** frames
        self.reference += (adapt * (thumb / gain - self.reference)) * ~changed[..., None]

        blob = _largest_blob(changed[by0:by1, bx0:bx1])
        if blob is None:
            self._steady_since = None
            return SceneView(False, None, 0.0, 0.0)
        cx, cy, cw, ch = blob
        fill = cw * ch / ((bx1 - bx0) * (by1 - by0))
        region = _square_region(((bx0 + cx) * w / gw, (by0 + cy) * h / gh, cw * w / gw, ch * h / gh), box, cfg.region_scale)
        rx0, ry0, rx1, ry1 = _in_cells(region, w, h, gw, gh)
        # In shares of the region's side: what blurs and shifts the model's view, at any resolution.
        motion = _motion(thumb[ry0:ry1, rx0:rx1], prev[ry0:ry1, rx0:rx1]) * (w / gw) / region[2] if prev is not None \
            else float("inf")
        present = fill >= cfg.min_fill
        if present and motion < cfg.max_motion:
            self._steady_since = t if self._steady_since is None else self._steady_since
            if not assessing and t - self._steady_since >= cfg.relearn_s:
                self.reference = thumb / gain  # still this long and nobody screened: it is the scene now
                self._steady_since = None
        else:
            self._steady_since = None
        return SceneView(present, region if present else None, fill, motion)


def _is_scene(thumb: np.ndarray) -> bool:
    """Whether a thumbnail shows a scene to learn: not near black, and not one flat colour."""
    return float(thumb.mean()) > DARK_LEVEL and float(thumb.std(axis=(0, 1)).max()) >= BLANK_LEVELS


def _in_cells(roi: Roi, w: int, h: int, gw: int, gh: int) -> tuple[int, int, int, int]:
    """A pixel ROI of a w x h frame as the cells (x0, y0, x1, y1) of a gw x gh thumbnail."""
    x0, y0 = int(roi[0] * gw / w), int(roi[1] * gh / h)
    return x0, y0, max(x0 + 1, round((roi[0] + roi[2]) * gw / w)), max(y0 + 1, round((roi[1] + roi[3]) * gh / h))


def _box_cells(box: Roi, w: int, h: int, gw: int, gh: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The box in thumbnail cells (x0, y0, x1, y1), and the cells to measure exposure
    gain on: those outside the box, or all when the box leaves too few."""
    bx0, by0, bx1, by1 = _in_cells(box, w, h, gw, gh)
    outside = np.ones((gh, gw), bool)
    outside[by0:by1, bx0:bx1] = False
    return (bx0, by0, bx1, by1), outside if outside.mean() >= MIN_OUTSIDE_SHARE else np.ones_like(outside)


def _change(now: np.ndarray, before: np.ndarray) -> float:
    """Mean change between two thumbnails in grey levels, with the exposure change between
    them taken out (auto-exposure drift is not motion)."""
    gain = np.median((now + GAIN_PAD) / (before + GAIN_PAD), axis=(0, 1))
    return float(np.abs(now - before * gain).max(2).mean())


def _motion(now: np.ndarray, before: np.ndarray) -> float:
    """How far the region's content moved, in cells of the thumbnail: measured on the cells
    and on cells twice as large, because a first-order estimate saturates near one cell
    (a tremor is a fraction of a cell; a lesion swept in moves several)."""
    fine = _displacement(now, before)
    if min(now.shape[:2]) < 4:
        return fine
    half = (now.shape[1] // 2, now.shape[0] // 2)
    coarse = _displacement(cv2.resize(now, half, interpolation=cv2.INTER_AREA), cv2.resize(before, half, interpolation=cv2.INTER_AREA))
    return max(fine, 2 * coarse)


def _displacement(now: np.ndarray, before: np.ndarray) -> float:
    """How far the picture moved between two thumbnails, in cells: the change over the
    picture's own contrast (a first-order estimate, so a textured lesion held with a tremor
    and a plain arm read alike; a sweep saturates above 1)."""
    if now.shape[0] < 2 or now.shape[1] < 2:
        return _change(now, before) / CONTRAST_FLOOR
    contrast = (np.abs(np.diff(now, axis=0)).max(2).mean() + np.abs(np.diff(now, axis=1)).max(2).mean()) / 2
    return _change(now, before) / max(float(contrast), CONTRAST_FLOOR)


def _largest_blob(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x, y, w, h) in cells of the largest 8-connected changed blob, after
    dropping lone cells (noise, a codec block)."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[i, :4])
    return x, y, w, h


def _square_region(rect: tuple[float, float, float, float], box: Roi, scale: float) -> Roi:
    """The square centred on rect, its side `scale` times rect's longer side, as large as
    the box allows, moved inside the box: the model's input is square and never sees
    outside the box."""
    x, y, w, h = rect
    side = min(max(w, h) * scale, box[2], box[3])
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(cx - side / 2, box[0]), box[0] + box[2] - side)
    y0 = min(max(cy - side / 2, box[1]), box[1] + box[3] - side)
    s = max(1, int(side))
    return int(x0), int(y0), s, s
