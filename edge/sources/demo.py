"""The demo source: the bundled example pictures (edge/demo/) shown to a camera the way
people show them (edge/visits.py): an empty room, the lesion coming in on an arm or held up
alone, held somewhere in the box (not filling it, often off centre) with a tremor, then
taken away; the light and the camera's noise change from visit to visit, the room (a fixed
camera's) does not. Runs on any machine, so `make run` shows the kiosk's real behaviour,
not a best case.

Rendered once: one visit per picture makes a cycle, played over and over. Each frame is
drawn the first time it is played and kept as the JPEG its simulated camera sends (a
frame's drawing ends in that codec anyway); from then on a frame costs its decoding, as a
real camera's MJPEG stream does, so `make run` shows the kiosk's cost, not the demo's. With a
`cache_dir` (the kiosk's state folder) each finished visit is written there, keyed by
everything that draws it, so a restart plays prepared frames from its first one and keeps
only the visit playing in memory; without one, the cycle stays in memory (~40 MB at 640x480).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from edge import synthetic, visits
from edge.config import QualityConfig
from edge.errors import CameraError
from edge.images import IMAGE_SUFFIXES, read_image
from edge.sources.base import Pacer, Source
from edge.state import open_nofollow, refuse_symlink
from edge.visits import VisitCamera, plan_visit

log = logging.getLogger(__name__)
DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
SCRIPT_FPS = 15.0  # visits are scripted at this frame rate; a faster source plays them fast-forward
MIN_COVERAGE = 0.35  # the demo's people hold the lesion close enough (they cannot hear "come closer")
CACHE_PREFIX = "demo-frames-"


def frames_in(camera: VisitCamera) -> int:
    """How many frames of SCRIPT_FPS a visit lasts: those at t = k / SCRIPT_FPS < its duration."""
    n = int(np.ceil(camera.plan.duration * SCRIPT_FPS))
    while n > 0 and (n - 1) / SCRIPT_FPS >= camera.plan.duration:
        n -= 1
    while n / SCRIPT_FPS < camera.plan.duration:
        n += 1
    return n


class DemoSource(Source):
    name = "demo"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0, folder: Path = DEMO_DIR,
                 box: tuple[float, float, float, float] = QualityConfig().box, seed: int = 0,
                 cache_dir: Path | None = None) -> None:
        self.width, self.height, self.fps, self.folder, self.box, self.seed = width, height, fps, folder, box, seed
        self.cache_dir = cache_dir
        self.pacer = Pacer(fps)
        self.pictures: list[np.ndarray] = []
        self.room: np.ndarray | None = None
        self.visit_number = 0  # in the cycle
        self.frame_number = 0  # in that visit
        self.prepared: dict[int, list[bytes]] = {}  # visit -> its frames as JPEG; without a cache_dir, every visit
        self._drawing: tuple[int, VisitCamera, int, list[bytes]] | None = None  # (visit, camera, frames, drawn so far)
        self._frames: dict[int, int] = {}  # visit -> its frame count
        self._store: Path | None = None

    def open(self) -> None:
        files = sorted(f for f in self.folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraError(f"no demo pictures in {self.folder}")
        self.pictures = [read_image(f) for f in files]
        self.room = synthetic.wall("room", self.width, self.height, np.random.default_rng(self.seed))
        self.visit_number = self.frame_number = 0
        self._drawing = None
        self._store = self._open_store() if self.cache_dir is not None else None

    def visit(self, number: int) -> VisitCamera:
        """Visit `number`: the pictures in turn, each visit drawn from its own seed."""
        rng = np.random.default_rng([self.seed, number])
        plan = plan_visit(self.pictures[number % len(self.pictures)], rng, MIN_COVERAGE)
        return VisitCamera(plan, self.width, self.height, self.box, SCRIPT_FPS, self.room)

    def read(self) -> np.ndarray | None:
        frame = synthetic.decode(self._next())
        self.pacer.wait()
        return frame

    def skip(self) -> bool:
        self._next()
        self.pacer.wait()
        return True

    # --- the cycle --------------------------------------------------------------------------

    def _next(self) -> bytes:
        """The next frame of the cycle (JPEG), drawn now if it never was."""
        n, k = self.visit_number, self.frame_number
        frames = self.prepared.get(n) or self._load(n)
        if frames is not None:
            jpeg, count = frames[k], len(frames)
        else:
            if self._drawing is None or self._drawing[0] != n:
                camera = self.visit(n)
                self._drawing = (n, camera, frames_in(camera), [])
            _, camera, count, drawn = self._drawing
            jpeg = camera.encoded(k / SCRIPT_FPS)
            drawn.append(jpeg)
            if len(drawn) == count:
                self._keep(n, drawn)
                self._drawing = None
        self.frame_number += 1
        if self.frame_number >= count:
            self.visit_number, self.frame_number = (n + 1) % len(self.pictures), 0
        return jpeg

    def _keep(self, n: int, frames: list[bytes]) -> None:
        if self._store is None:
            self.prepared[n] = frames
            return
        self.prepared = {n: frames}  # only the visit playing stays in memory; the rest is on disk
        data = np.frombuffer(b"".join(frames), np.uint8)
        ends = np.cumsum([len(f) for f in frames])
        tmp = self._store / f"visit-{n}.tmp.npz"
        try:
            with os.fdopen(open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as f:  # never through a link
                np.savez(f, data=data, ends=ends)
            tmp.replace(self._store / f"visit-{n}.npz")
        except OSError as e:
            log.warning("demo: cannot keep prepared frames in %s (%s); keeping them in memory", self._store, e)
            self._store = None
            self.prepared[n] = frames

    def _load(self, n: int) -> list[bytes] | None:
        if self._store is None or not (path := self._store / f"visit-{n}.npz").is_file():
            return None
        try:
            with np.load(path) as z:
                data, ends = z["data"].tobytes(), z["ends"]
        except (OSError, ValueError, KeyError) as e:
            log.warning("demo: %s unreadable (%s); drawing that visit again", path, e)
            return None
        starts = np.concatenate([[0], ends[:-1]])
        self.prepared = {n: [data[a:b] for a, b in zip(starts, ends, strict=True)]}
        return self.prepared[n]

    def _open_store(self) -> Path | None:
        """The cache folder of this demo's frames (named by a hash of everything that draws
        them: pictures, size, box, seed, the drawing code, the JPEG codec); others removed."""
        h = hashlib.sha256()
        for picture in self.pictures:
            h.update(np.ascontiguousarray(picture).tobytes())
        h.update(repr((self.width, self.height, tuple(self.box), self.seed, SCRIPT_FPS, MIN_COVERAGE, cv2.__version__)).encode())
        for module in (synthetic, visits):
            h.update(inspect.getsource(module).encode())
        store = Path(self.cache_dir) / f"{CACHE_PREFIX}{h.hexdigest()[:16]}"
        try:
            for old in Path(self.cache_dir).glob(f"{CACHE_PREFIX}*"):
                if old != store and old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
            refuse_symlink(store)  # frames written through a link would land outside the state folder
            store.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.warning("demo: no cache of prepared frames in %s (%s); keeping them in memory", self.cache_dir, e)
            return None
        return store
