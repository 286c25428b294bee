"""A folder of images played as a stream (sorted by name), e.g. pictures taken elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import CameraError, ImageError, SourceEnded
from edge.images import IMAGE_SUFFIXES, read_image
from edge.sources.base import Pacer, Source


class FolderSource(Source):
    def __init__(self, folder: str | Path, fps: float, loop: bool) -> None:
        self.folder, self.loop, self.pacer = Path(folder), loop, Pacer(fps)
        self.name = f"folder:{folder}"
        self.files: list[Path] = []
        self.index = 0
        self.unreadable: set[Path] = set()

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"image folder not found: {self.folder}")
        self.files = sorted(f for f in self.folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraError(f"no images in {self.folder}")
        self.index = 0

    def read(self) -> np.ndarray | None:
        if self.index >= len(self.files):
            if not self.loop:
                raise SourceEnded(f"{self.name}: played to the end")
            self.index = 0
        f = self.files[self.index]
        self.index += 1
        self.pacer.wait()
        try:
            return read_image(f)
        except ImageError:
            self.unreadable.add(f)  # a corrupt picture is skipped, not fatal
            if len(self.unreadable) == len(self.files):
                raise CameraError(f"no readable image in {self.folder}") from None
            return None
