"""The demo source: the bundled example pictures (edge/demo/) shown to a camera the way a
person would: an empty scene, the lesion approaching, held in the box with a slight tremor,
then taken away. Runs on any machine, so `make run` shows real screenings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.engine import IMAGE_SUFFIXES, read_image
from edge.errors import CameraError
from edge.sources.base import Pacer, Source

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
# Seconds of each phase of one visit: nobody there, approaching, holding still, leaving.
PHASES = (("empty", 3.0), ("approach", 1.5), ("hold", 4.5), ("leave", 1.0))
SCRIPT_FPS = 15.0  # the phases are scripted in frames at this rate; a faster source plays them fast-forward
START_SCALE = 0.3  # of the held size, when the picture first appears


def background(width: int, height: int) -> np.ndarray:
    """A dim blue-grey wall with a soft gradient: no skin colour anywhere."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    b = 120 + 40 * x + 0 * y
    g = 95 + 20 * y + 0 * x
    r = 70 + 10 * x * y
    return np.stack([b, g, r], -1).clip(0, 255).astype(np.uint8)


class DemoSource(Source):
    name = "demo"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, folder: Path = DEMO_DIR) -> None:
        self.width, self.height, self.fps, self.folder = width, height, fps, folder
        self.pacer = Pacer(fps)
        self.pictures: list[np.ndarray] = []
        self.frame_index = 0
        self.rng = np.random.default_rng(0)

    def open(self) -> None:
        files = sorted(f for f in self.folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraError(f"no demo pictures in {self.folder}")
        self.pictures = [read_image(f) for f in files]
        self.wall = background(self.width, self.height)
        self.frame_index = 0

    def phase(self, index: int) -> tuple[int, str, float]:
        """Frame index -> (picture number, phase name, progress 0..1 through the phase)."""
        t = index / SCRIPT_FPS
        visit = sum(d for _, d in PHASES)
        n, t = int(t // visit), t % visit
        for name, duration in PHASES:
            if t < duration:
                return n % len(self.pictures), name, t / duration
            t -= duration
        return n % len(self.pictures), PHASES[-1][0], 1.0

    def read(self) -> np.ndarray | None:
        n, name, progress = self.phase(self.frame_index)
        self.frame_index += 1
        frame = self.wall.copy()
        full = int(0.7 * self.height)  # the held picture fills the kiosk's target box
        scale = {"empty": 0.0, "approach": START_SCALE + (1 - START_SCALE) * progress, "hold": 1.0,
                 "leave": 1.0 - progress}[name]
        side = int(full * scale)
        if side >= 8:
            pic = cv2.resize(self.pictures[n], (side, side), interpolation=cv2.INTER_LINEAR)
            jitter = self.rng.integers(-3, 4, 2) if name == "hold" else np.zeros(2, int)
            x = (self.width - side) // 2 + int(jitter[0]) + (int((1 - scale) * self.width * 0.3) if name == "leave" else 0)
            y = (self.height - side) // 2 + int(jitter[1])
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(self.width, x + side), min(self.height, y + side)
            frame[y0:y1, x0:x1] = pic[y0 - y:y1 - y, x0 - x:x1 - x]
        self.pacer.wait()
        return frame
