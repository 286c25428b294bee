"""The demo source: the bundled example pictures (edge/demo/) shown to a camera the way
people show them (edge/visits.py): an empty room, the lesion coming in on an arm or held up
alone, held somewhere in the box (not filling it, often off centre) with a tremor, then
taken away; the light and the camera's noise change from visit to visit, the room (a fixed
camera's) does not. Runs on any machine, so `make run` shows the kiosk's real behaviour,
not a best case."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge import synthetic
from edge.config import QualityConfig
from edge.errors import CameraError
from edge.images import IMAGE_SUFFIXES, read_image
from edge.sources.base import Pacer, Source
from edge.visits import VisitCamera, plan_visit

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
SCRIPT_FPS = 15.0  # visits are scripted at this frame rate; a faster source plays them fast-forward
MIN_COVERAGE = 0.35  # the demo's people hold the lesion close enough (they cannot hear "come closer")


class DemoSource(Source):
    name = "demo"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, folder: Path = DEMO_DIR,
                 box: tuple[float, float, float, float] = QualityConfig().box, seed: int = 0) -> None:
        self.width, self.height, self.fps, self.folder, self.box, self.seed = width, height, fps, folder, box, seed
        self.pacer = Pacer(fps)
        self.pictures: list[np.ndarray] = []
        self.frame_index = 0
        self.visit_number = -1
        self.visit_start = 0
        self.camera: VisitCamera | None = None
        self.room: np.ndarray | None = None

    def open(self) -> None:
        files = sorted(f for f in self.folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraError(f"no demo pictures in {self.folder}")
        self.pictures = [read_image(f) for f in files]
        self.room = synthetic.wall("room", self.width, self.height, np.random.default_rng(self.seed))
        self.frame_index = self.visit_start = 0
        self.visit_number = -1
        self.camera = None

    def visit(self, number: int) -> VisitCamera:
        """Visit `number`: the pictures in turn, each visit drawn from its own seed."""
        rng = np.random.default_rng([self.seed, number])
        plan = plan_visit(self.pictures[number % len(self.pictures)], rng, MIN_COVERAGE)
        return VisitCamera(plan, self.width, self.height, self.box, SCRIPT_FPS, self.room)

    def read(self) -> np.ndarray | None:
        t = (self.frame_index - self.visit_start) / SCRIPT_FPS
        if self.camera is None or t >= self.camera.plan.duration:
            self.visit_number += 1
            self.visit_start, t = self.frame_index, 0.0
            self.camera = self.visit(self.visit_number)
        self.frame_index += 1
        frame = self.camera.frame(t)
        self.pacer.wait()
        return frame
