"""Synthetic kiosk scenes: the walls and rooms a kiosk camera looks at, the skin a lesion is
shown on, and the camera's own faults (exposure and white-balance drift, noise, codec loss).

One source of these pictures for three users: the demo source (so `make run` shows people
the way a camera sees them), the session simulator (research/simulate.py), and the training
augmentation (training/augment.py), so the classifier trains on the view the box gives it.
Everything is drawn from a numpy Generator, so a seed gives the same scene every time.
"""

from __future__ import annotations

import cv2
import numpy as np

# Skin tones from pale to deep (BGR), roughly the Monk skin-tone scale's ten steps.
SKIN_TONES = np.array([
    (226, 236, 246), (207, 223, 243), (186, 210, 234), (160, 191, 219), (131, 168, 212),
    (105, 138, 179), (83, 113, 152), (62, 82, 114), (46, 60, 84), (34, 41, 56),
], np.float32)
WALL_KINDS = ("plain", "skin_wall", "wood", "room", "fabric")


def skin_tone(rng: np.random.Generator) -> np.ndarray:
    """One skin tone (BGR float), a little varied around a step of the scale."""
    return SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08, 3)


def _gradient(w: int, h: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative light falloff (h, w, 1) around 1.0: lamps and windows."""
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    a, b = rng.uniform(-1, 1, 2)
    return (1 + strength * (a * x + b * y) - 0.5 * strength * (x * x + y * y) * rng.uniform(0, 1))[..., None]


def _texture(w: int, h: int, rng: np.random.Generator, scale: int) -> np.ndarray:
    """Smooth random texture in about -1..1 (h, w): plaster, grain, fabric folds."""
    small = rng.standard_normal((max(2, h // scale), max(2, w // scale))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def wall(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 BGR background of one kind (see WALL_KINDS)."""
    if kind == "plain":
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 120), rng.integers(60, 240)]]])
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        img = base * (1 + 0.03 * _texture(w, h, rng, 24)[..., None])
    elif kind == "skin_wall":
        img = skin_tone(rng) * (1 + 0.04 * _texture(w, h, rng, 32)[..., None])
    elif kind == "wood":
        base = np.array([rng.uniform(40, 90), rng.uniform(80, 130), rng.uniform(120, 190)], np.float32)
        vertical = rng.random() < 0.5
        n, m = (w, h) if vertical else (h, w)
        across = np.arange(n, dtype=np.float32)[:, None]
        along = _texture(m, n, rng, 40) * 6
        grain = np.sin((across + along) * rng.uniform(0.15, 0.5)) * 0.12
        plank = max(20, n // rng.integers(3, 8))
        seams = ((across.astype(int) % plank) < 2).astype(np.float32) * -0.35
        shade = (1 + grain + seams + 0.05 * _texture(m, n, rng, 60))
        img = base * (shade.T if vertical else shade)[..., None]
    elif kind == "room":
        img = wall("plain", w, h, rng).astype(np.float32)
        for _ in range(rng.integers(4, 14)):  # shelves, posters, door frames, boxes
            colour = rng.uniform(20, 235, 3)
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(w // 20, w // 3)), y0 + int(rng.integers(h // 20, h // 3))
            if rng.random() < 0.7:
                cv2.rectangle(img, (x0, y0), (x1, y1), colour.tolist(), -1)
            else:
                cv2.circle(img, (x0, y0), int(rng.integers(h // 30, h // 6)), colour.tolist(), -1)
        img = cv2.GaussianBlur(img, (0, 0), 1.2)
    elif kind == "fabric":
        a, b = rng.uniform(20, 230, 3), rng.uniform(20, 230, 3)
        period = int(rng.integers(8, 40))
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = ((xx // period) % 2 if rng.random() < 0.5 else ((xx // period) + (yy // period)) % 2)[..., None]
        img = np.where(stripes > 0, a, b).astype(np.float32) * (1 + 0.15 * _texture(w, h, rng, 30)[..., None])
    else:
        raise ValueError(f"unknown wall kind {kind!r}; one of {WALL_KINDS}")
    return np.clip(img * _gradient(w, h, rng, rng.uniform(0, 0.35)), 0, 255).astype(np.uint8)


def background(w: int, h: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A wall of a random kind, and its kind."""
    kind = WALL_KINDS[rng.integers(len(WALL_KINDS))]
    return wall(kind, w, h, rng), kind


def skin_patch(w: int, h: int, tone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An arm or a back in one tone: smooth shading and faint texture, uint8 BGR."""
    img = tone * (1 + 0.05 * _texture(w, h, rng, 16)[..., None]) * _gradient(w, h, rng, rng.uniform(0.1, 0.4))
    return np.clip(img, 0, 255).astype(np.uint8)


def rounded_mask(w: int, h: int, radius: float) -> np.ndarray:
    """A float mask (h, w) of a rounded rectangle with soft edges: a limb, not a card."""
    mask = np.zeros((h, w), np.float32)
    r = int(radius * min(w, h))
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1.0, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(mask, (cx, cy), r, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, min(w, h) / 60))


def paste(canvas: np.ndarray, picture: np.ndarray, cx: float, cy: float, side: float, angle: float = 0.0,
          mask: np.ndarray | None = None) -> None:
    """Draw `picture` into `canvas` in place, centred at (cx, cy), its longer side `side`
    pixels, turned by `angle` degrees, blended through `mask` (same size as picture)."""
    ph, pw = picture.shape[:2]
    s = side / max(ph, pw)
    rot = cv2.getRotationMatrix2D((pw / 2, ph / 2), angle, s)
    rot[:, 2] += (cx - pw / 2, cy - ph / 2)
    half = int(side * 0.75) + 2
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    x1, y1 = min(canvas.shape[1], int(cx) + half), min(canvas.shape[0], int(cy) + half)
    if x1 <= x0 or y1 <= y0:
        return
    rot[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(picture, rot, size, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(mask if mask is not None else np.ones((ph, pw), np.float32), rot, size, flags=cv2.INTER_LINEAR)
    if canvas.dtype != np.uint8 or picture.dtype != np.uint8:
        raise ValueError("paste draws uint8 pictures on uint8 canvases")
    region = canvas[y0:y1, x0:x1]
    region[:] = cv2.blendLinear(warped, np.ascontiguousarray(region), alpha, 1.0 - alpha)


def motion_blur(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Blur along the motion (dx, dy) in pixels during one exposure."""
    length = int(round(np.hypot(dx, dy)))
    if length < 2:
        return image
    k = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
    c = length
    cv2.line(k, (int(c - dx / 2), int(c - dy / 2)), (int(c + dx / 2), int(c + dy / 2)), 1.0, 1)
    return cv2.filter2D(image, -1, k / k.sum())


def camera_look(image: np.ndarray, gain: float, white_balance: np.ndarray) -> np.ndarray:
    """Exposure gain and per-channel white balance, as a camera's auto-exposure drifts."""
    table = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain * white_balance[None, :], 0, 255).astype(np.uint8)
    return cv2.merge([cv2.LUT(c, table[:, i]) for i, c in enumerate(cv2.split(image))])


def codec(image: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip: the blocking and ringing of a compressed camera stream."""
    return decode(encode(image, quality))


def encode(image: np.ndarray, quality: int) -> bytes:
    """uint8 BGR -> JPEG bytes at `quality`, as a camera's codec sends them."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} picture as JPEG")
    return buf.tobytes()


def decode(jpeg: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 BGR."""
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


class NoiseBank:
    """Sensor noise without drawing millions of normals per frame: one field drawn once,
    read at an offset that changes with the frame number (so a frame is a function of its
    number, and two frames in a row differ)."""

    def __init__(self, w: int, h: int, sigma: float, rng: np.random.Generator) -> None:
        self.field = (rng.standard_normal((h + 64, w + 64, 3)) * sigma).astype(np.int16)
        self.w, self.h = w, h

    def add(self, image: np.ndarray, frame_number: int) -> np.ndarray:
        ox, oy = (frame_number * 37) % 64, (frame_number * 23 + frame_number // 64) % 64
        noisy = image.astype(np.int16) + self.field[oy:oy + self.h, ox:ox + self.w]
        return np.clip(noisy, 0, 255).astype(np.uint8)


def composite(picture: np.ndarray, size: int, rng: np.random.Generator, min_fill: float = 0.6) -> np.ndarray:
    """The kiosk's view of a held picture after framing: `picture` (uint8, square) at
    min_fill..1 of a size x size view, off centre, turned a little, on skin of a random tone
    or on a wall. Channel order follows `picture` (the walls are drawn in BGR, so an RGB
    picture gets walls with red and blue swapped: as varied either way)."""
    if rng.random() < 0.6:
        canvas = skin_patch(size, size, skin_tone(rng), rng)
    else:
        canvas = background(size, size, rng)[0]
    side = size * rng.uniform(min_fill, 1.0)
    slack = (size - side) / 2
    cx, cy = size / 2 + rng.uniform(-slack, slack, 2)
    paste(canvas, picture, cx, cy, side, rng.uniform(-12, 12), rounded_mask(*picture.shape[1::-1], 0.08))
    return canvas
