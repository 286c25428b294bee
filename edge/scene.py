"""What is shown in the target box: presence, motion and framing, from a small thumbnail.

Presence is *change against the empty scene*, not skin colour. A colour rule fails on pale,
dark, reddened and lesion-covered skin and on black-and-white photos, and it fires on beige
and wooden walls; a kiosk's camera is fixed, so what matters is that something arrived in
front of it. The empty scene is learned when the box has been still for `learn_s` at
start, then follows light drift cell by cell wherever nothing is in front. Something that
stays still for `relearn_s` while no screening is under way (a poster, a moved chair)
becomes part of the scene.

What changes a fixed camera's picture without anyone there falls in three classes, each
told from a person by what it is, not by thresholds tuned to examples:
- Light multiplies the scene. In log units it adds a field that is smooth (exposure and
  white balance: a constant per channel; a lamp or a window: a gradient), fitted robustly
  over the whole picture (_light_field) and taken out. What the fit leaves (a shadow, a
  cloud's edge, a patch of sun) keeps the wall's colour and texture: it changes every
  channel alike and varies smoothly from cell to cell. A person brings new content: another
  colour, or texture the wall did not have (_new_content); a changed blob counts only when
  enough of its inner cells show it (_object_blob). A clipped channel is a bound, not a value:
  it says only that the wall is at least that bright, and the scene learns no more from it.
  So is a cell's mean when some of its samples clip (a fabric clips thread by thread).
- The camera moving shifts the whole picture: compared with the empty scene shifted alike
  (phase correlation of the thumbnails), the room is the room (_camera_shift).
- Things passing do not hold still: a hand swept through the box or a passer-by close to the
  lens is motion (the gate says "hold still" and nothing is classified). Something held still
  close to the lens, covering the picture well beyond the box, is someone showing their skin
  up close, and is screened like any visit.
Known limit: a flat thing of the wall's own colour and texture is, to a fixed camera, a
shadow of its shape, and is not seen.

A blank field (a camera's black, grey or green warm-up frames, a lens cap, a dark room) is
never learned as the scene: against it, the real room would be "someone" and be screened.
When nearly the whole picture stays changed with no screening under way (the camera turned
to another view), the scene is learned again: no person covers the whole frame for long.

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
SATURATED = 245.0  # grey levels: a channel this bright is clipped, and more light leaves it as it is
CLIPPED_SHARE = 0.125  # of a cell's samples clipped: its mean is a bound (a single clipped sample of 16 is as likely noise on a bright wall)
LIGHT_FIT_ROUNDS = 3  # robust fit of the light field: keep to the cells it explains, fit again
RIDGE = np.diag([0.0, 1e-3, 1e-3]).astype(np.float32)  # per cell fitted, on the light field's gradient terms
LIGHT_FIT_WIDTH = 32  # cells across the grid the light field is fitted on: enough to fit a plane robustly with a third of the picture someone
LIGHT_TOL = 0.1  # log units (10%): a cell within this of the fitted light is explained by it (noise floor of the fit)
SHIFT_TRY_SHARE = 0.02  # this share of cells changed: check whether the camera moved
MIN_SHIFT_CELLS = 0.2  # a whole-picture shift below this (cells) is noise, not the camera moving
CHROMA_SHARE = 0.5  # a colour change (not a brightness change) of this share of cell_change is new content
NEW_SHARE = 0.2  # share of a changed blob's inner cells that must show new content: something is there, not light
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


def thumbnail(image: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (gh, grid, 3) cell means of the frame (a few thousand numbers stand for it), and
    per cell and channel whether its samples clip (CLIPPED_SHARE of them): then the mean is a
    bound (the wall is at least that bright), even where the cell's other samples are not
    clipped, as on a fabric whose brightest threads clip first."""
    h, w = image.shape[:2]
    gh = max(1, round(grid * h / w))
    # 4x4 samples a cell (nearest, cheap), then their mean: 0.1 ms for 1280x720, where a
    # full area average reads every pixel for 0.9 ms.
    sampled = cv2.resize(image, (min(w, grid * 4), min(h, gh * 4)), interpolation=cv2.INTER_NEAREST)
    means = cv2.resize(sampled, (grid, gh), interpolation=cv2.INTER_AREA).astype(np.float32)
    over = cv2.threshold(sampled, SATURATED, 16, cv2.THRESH_BINARY)[1]  # a cell's mean of these: 16 x its clipped share
    return means, cv2.resize(over, (grid, gh), interpolation=cv2.INTER_AREA) >= 16 * CLIPPED_SHARE


class SceneWatch:
    def __init__(self, cfg: PresenceConfig) -> None:
        self.cfg = cfg
        self.reference: np.ndarray | None = None  # the empty scene's thumbnail
        self._previous: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._still_since: float | None = None  # the box (a scene, not a blank field) still since: learning
        self._steady_since: float | None = None  # what is shown has not moved since
        self._scene_changed_since: float | None = None  # nearly every cell has differed from the scene since
        self._cells: tuple | None = None  # (box, box in cells), per box
        self._light_grid: LightGrid | None = None  # where the light field is fitted, per thumbnail size
        self._window: np.ndarray | None = None
        self._new: np.ndarray | None = None  # the last frame's cells with new content: left out of the light fit

    def reset(self) -> None:
        self._previous = self._shape = self._cells = self._light_grid = self._window = None
        self.forget()

    def forget(self) -> None:
        """Learn the empty scene again, from the next still frames of this size (the view
        changed, or the kiosk was stuck taking something for a person)."""
        self.reference = self._still_since = self._steady_since = self._scene_changed_since = self._new = None

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
        thumb, clipped = thumbnail(image, cfg.grid)
        gh, gw = thumb.shape[:2]
        prev, self._previous = self._previous, thumb
        if self._cells is None or self._cells[0] != box:
            self._cells = (box, _in_cells(box, w, h, gw, gh))
        if self._light_grid is None or self._light_grid.cells.shape[0] != gh * gw:
            self._light_grid, self._window = LightGrid.of(gw, gh), cv2.createHanningWindow((gw, gh), cv2.CV_32F)
        _, (bx0, by0, bx1, by1) = self._cells
        if self.reference is None:
            # Still where people show things: someone walking past or coming in from a side,
            # outside the box, does not keep the kiosk from learning the scene.
            still = prev is not None and _is_scene(thumb) and \
                _change(thumb[by0:by1, bx0:bx1], prev[by0:by1, bx0:bx1]) < STILL_LEVELS
            self._still_since = (self._still_since if self._still_since is not None else t) if still else None
            if self._still_since is not None and t - self._still_since >= cfg.learn_s:
                self.reference = thumb.copy()
            return SceneView(False, None, 0.0, float("inf"), learning=True)

        light, measured = _light_field(thumb, clipped, self.reference, self._light_grid, self._new)
        expected, changed = self._compare(thumb, clipped, self.reference, light, measured)
        compensated = False
        if changed.mean() >= SHIFT_TRY_SHARE and (moved := _camera_shift(thumb, self.reference, self._window)) is not None:
            # The camera shook or was knocked: the scene shifted as a whole. Compared with the
            # empty scene shifted alike, a shifted room is the room, not something new in it.
            # Tried under the light already fitted (a smooth field, nearly the same for a
            # shifted view); only a shift that explains the change has its light fitted again.
            shifted = _shift(self.reference, moved)
            if self._compare(thumb, clipped, shifted, light, measured)[1].sum() <= 0.5 * changed.sum():
                light2, measured2 = _light_field(thumb, clipped, shifted, self._light_grid, self._new)
                expected2, changed2 = self._compare(thumb, clipped, shifted, light2, measured2)
                if changed2.sum() <= 0.5 * changed.sum():
                    light, expected, changed, compensated = light2, expected2, changed2, True
        if changed.mean() >= SCENE_CHANGED_SHARE and not assessing:  # (never under a screening: a close-up visit)
            self._scene_changed_since = t if self._scene_changed_since is None else self._scene_changed_since
            if t - self._scene_changed_since >= SCENE_CHANGED_S:
                self.forget()
                return SceneView(False, None, 0.0, float("inf"), learning=True)
        else:
            self._scene_changed_since = None
        new = changed & _new_content(thumb, expected, cfg.cell_change) if changed.any() else changed
        self._new = new
        blob, mask = _object_blob(changed[by0:by1, bx0:bx1], new[by0:by1, bx0:bx1])
        # Cells where nothing is in front follow slow light drift. When nothing is in front at
        # all, so do cells whose change is light (a shadow, a patch of sun): the empty scene is
        # the wall under today's light. Not while someone is: the flat parts of an arm could
        # pass for light, and a scene that learned them would see them long after they left.
        if not compensated:  # (a shifted view is not the scene's light)
            follow = ~changed if mask is not None else ~new
            adapt = cfg.adapt if frames <= 1 else 1 - (1 - cfg.adapt) ** frames
            step = adapt * (thumb / light - self.reference)
            # A clipped channel shows a bound: the wall is at least that bright. The scene learns
            # that much from it (up, never down), or it would be too dark there once the light
            # falls again, and look like someone.
            self.reference += np.where(clipped, np.maximum(step, 0), step) * follow[..., None]
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
                self.reference = thumb / light  # still this long and nobody screened: it is the scene now
                self._steady_since = None
        else:
            self._steady_since = None
        return SceneView(present, region if present else None, fill, motion)

    def _compare(self, thumb: np.ndarray, clipped: np.ndarray, reference: np.ndarray, light: np.ndarray,
                 measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The empty scene under the light now (a smooth multiplicative field per channel,
        and the channels it could be measured in: _light_field), and the cells that differ
        from it by more than cell_change."""
        expected = reference * light
        # A clipped channel is a lower bound, not a value: where the empty scene's was clipped,
        # the wall may be brighter than expected (less light or another white balance shows
        # what clipping hid); where it is clipped now, dimmer than expected. A channel whose
        # light could not be measured (clipped nearly everywhere) says nothing while another
        # channel's could (with none measured, the light is taken as unchanged).
        differs = thumb - expected
        differs[(reference > SATURATED) & (differs > 0)] = 0
        differs[clipped & (differs < 0)] = 0
        if measured.any():
            differs[..., ~measured] = 0
        changed = _channel_max(np.abs(differs)) > self.cfg.cell_change
        return expected, changed


def _channel_max(a: np.ndarray) -> np.ndarray:
    """The largest of the last axis's three channels: the same as a.max(-1), several times
    faster (numpy reduces a short last axis element by element)."""
    return np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])


def _is_scene(thumb: np.ndarray) -> bool:
    """Whether a thumbnail shows a scene to learn: not near black, and not one flat colour."""
    return float(thumb.mean()) > DARK_LEVEL and float(thumb.std(axis=(0, 1)).max()) >= BLANK_LEVELS


@dataclass(frozen=True)
class LightGrid:
    """Where the light field is fitted and where it is used, per thumbnail size. The field is a
    plane, smooth by construction, so it is fitted on a coarser grid (LIGHT_FIT_WIDTH cells
    across: a quarter of the work at the default grid, where the fit's reductions over the
    cells were most of a look at the scene) and evaluated on the thumbnail's own cells, where
    cells are compared."""

    cells: np.ndarray  # (gh * gw, 3): the plane's terms per thumbnail cell (1, x, y; x and y in -1..1)
    coarse: np.ndarray  # the same terms averaged over each fitting cell (exact for a plane)
    size: tuple[int, int]  # (width, height) of the fitting grid
    products: np.ndarray  # (fitting cells, 9): each fitting cell's products of two terms (i * 3 + j), for the normal equations

    @classmethod
    def of(cls, gw: int, gh: int) -> LightGrid:
        """A plane over the frame: enough for exposure, white balance and the broad gradient of
        a lamp or a window, too stiff to bend around something shown in the box (what it
        leaves, _new_content tells from light)."""
        y, x = np.mgrid[0:gh, 0:gw].astype(np.float32)
        x, y = 2 * x / max(1, gw - 1) - 1, 2 * y / max(1, gh - 1) - 1
        fit_w = min(gw, LIGHT_FIT_WIDTH)
        size = (fit_w, max(1, round(gh * fit_w / gw)))
        terms = np.dstack([np.ones_like(x), x, y])
        coarse = _coarse(terms, size).reshape(-1, 3)
        return cls(terms.reshape(-1, 3), coarse, size, (coarse[:, :, None] * coarse[:, None, :]).reshape(-1, 9))


def _median(values: np.ndarray) -> np.ndarray:
    """np.median's value along the first axis (the mean of the two middle ones for an even
    count), at a fraction of its overhead on a few hundred or thousand values."""
    n = len(values)
    middle = np.partition(values, [(n - 1) // 2, n // 2], axis=0)
    return (middle[(n - 1) // 2] + middle[n // 2]) / 2


def _coarse(cells: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Cell means over a coarser grid of `size` (width, height)."""
    if (cells.shape[1], cells.shape[0]) == size:
        return cells
    return cv2.resize(cells.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def _light_field(thumb: np.ndarray, clipped_now: np.ndarray, reference: np.ndarray, grid: LightGrid,
                 skip: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How the light changed since the empty scene was learned, per cell and channel, as a
    multiplicative field: light multiplies what the camera sees, so in log units it is a sum,
    and a smooth one (exposure and white balance are constants, a lamp or a window a
    gradient). Fitted robustly, so that a person does not bend it (a bent field would teach
    the empty scene their colours where the wall shows, and the wall would later look like
    someone): fitting cells that hold something new on the last frame (`skip`) or a clipped
    channel are left out; the fit starts from the median change, then keeps to the cells
    within LIGHT_TOL of the field so far. Also which channels it could measure (bool per
    channel): one clipped nearly everywhere is given the others' light, a guess."""
    gh, gw = thumb.shape[:2]
    clipped = clipped_now | (reference > SATURATED)
    rho = cv2.log((_coarse(thumb, grid.size) + GAIN_PAD) / (_coarse(reference, grid.size) + GAIN_PAD)).reshape(-1, 3)
    usable = (_coarse(clipped.astype(np.float32), grid.size) == 0).reshape(-1, 3)  # per channel: clipped says nothing
    if skip is not None:
        held = (_coarse(skip.astype(np.float32), grid.size) > 0).ravel()
        if (usable.all(1) & ~held).sum() >= 0.25 * held.size:
            usable &= ~held[:, None]
    design = grid.coarse
    enough = 4 * design.shape[1]
    coef = np.zeros((design.shape[1], 3), np.float32)
    known = usable.sum(0) >= enough
    if not known.any():
        return np.ones_like(thumb), known
    coef[0, known] = [float(_median(rho[usable[:, c], c])) for c in np.flatnonzero(known)]
    for _ in range(LIGHT_FIT_ROUNDS):
        off = _channel_max(np.where(usable, np.abs(rho - design @ coef), 0)) < LIGHT_TOL
        keep = (usable & off[:, None]).T.astype(np.float32)  # (channel, cell)
        counts = keep.sum(1)
        fitted = known & (counts >= enough)
        if not fitted.any():
            break
        # The three channels' 3x3 normal equations at once: their terms' products summed over
        # the kept cells in one product; a whisker of ridge on the gradient keeps cells in a
        # line solvable.
        normal = (keep[fitted] @ grid.products).reshape(-1, 3, 3) + RIDGE * counts[fitted][:, None, None]
        moments = (keep[fitted] * rho.T[fitted]) @ design  # (channel, term)
        coef[:, fitted] = np.linalg.solve(normal, moments[..., None])[..., 0].T
    if not known.all():  # a channel clipped nearly everywhere: its light taken as the others' (light is mostly grey)
        coef[:, ~known] = coef[:, known].mean(1, keepdims=True)
    return cv2.exp(np.clip(grid.cells @ coef, -3, 3)).reshape(gh, gw, 3), known


def _new_content(thumb: np.ndarray, expected: np.ndarray, cell_change: float) -> np.ndarray:
    """Cells whose change is not light: light multiplies the scene by a factor that is the same
    in each channel once exposure and white balance are out, and that varies smoothly from cell
    to cell (a shadow or a patch of sun has one factor inside, a soft or sharp edge around).
    So a cell shows something new when its colour changed (not only its brightness), or when
    it differs from the empty scene relit by its neighbours' light (the 3x3 median of the
    change), that is, its texture changed. Along a shadow's sharp edge the second test fires
    too; _object_blob looks inside a blob, away from its edge."""
    d = np.log((thumb + GAIN_PAD) / (expected + GAIN_PAD)).astype(np.float32)
    local = cv2.medianBlur(d, 3)
    texture = _channel_max(np.abs(thumb - expected * np.exp(local))) > cell_change
    colour = _channel_max(np.abs(thumb - expected * np.exp(d.mean(2, keepdims=True)))) > CHROMA_SHARE * cell_change
    return texture | colour


def _object_blob(changed: np.ndarray, new: np.ndarray) -> tuple[tuple[int, int, int, int] | None, np.ndarray | None]:
    """The largest changed blob that is something, not light: bounding box (x, y, w, h) in
    cells and its mask. A blob counts when at least NEW_SHARE of its inner cells (a cell in
    from its edge, where a shadow's edge would show) have new content (_new_content). A shadow
    or a patch of light keeps the wall's colour and texture inside; skin, cloth or a photo
    brings its own. Known limit: a flat thing of the wall's own colour and texture is, to a
    fixed camera, a shadow of its shape."""
    if not changed.any():
        return None, None
    m = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    for i in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:4]:
        blob = labels == i
        inner = cv2.erode(blob.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        cells = inner if inner.sum() >= 4 else blob
        if new[cells].mean() >= NEW_SHARE:
            x, y, w, h = (int(v) for v in stats[i, :4])
            return (x, y, w, h), blob
    return None, None


def _camera_shift(thumb: np.ndarray, reference: np.ndarray, window: np.ndarray) -> tuple[float, float] | None:
    """How far the whole picture moved against the empty scene (cells, x and y), by phase
    correlation; None below MIN_SHIFT_CELLS."""
    (dx, dy), _ = cv2.phaseCorrelate(reference.mean(2).astype(np.float32), thumb.mean(2).astype(np.float32), window)
    return (dx, dy) if np.hypot(dx, dy) >= MIN_SHIFT_CELLS else None


def _shift(thumb: np.ndarray, by: tuple[float, float]) -> np.ndarray:
    m = np.float32([[1, 0, by[0]], [0, 1, by[1]]])
    return cv2.warpAffine(thumb, m, (thumb.shape[1], thumb.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _in_cells(roi: Roi, w: int, h: int, gw: int, gh: int) -> tuple[int, int, int, int]:
    """A pixel ROI of a w x h frame as the cells (x0, y0, x1, y1) of a gw x gh thumbnail."""
    x0, y0 = int(roi[0] * gw / w), int(roi[1] * gh / h)
    return x0, y0, max(x0 + 1, round((roi[0] + roi[2]) * gw / w)), max(y0 + 1, round((roi[1] + roi[3]) * gh / h))


def _change(now: np.ndarray, before: np.ndarray) -> float:
    """Mean change between two thumbnails in grey levels, with the exposure change between
    them taken out (auto-exposure drift is not motion)."""
    gain = _median(((now + GAIN_PAD) / (before + GAIN_PAD)).reshape(-1, now.shape[-1]))
    return float(_channel_max(np.abs(now - before * gain)).mean())


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
    contrast = (_channel_max(np.abs(np.diff(now, axis=0))).mean() + _channel_max(np.abs(np.diff(now, axis=1))).mean()) / 2
    return _change(now, before) / max(float(contrast), CONTRAST_FLOOR)


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
