"""What every frame source provides."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np


class Source(ABC):
    """open() raises CameraError when the source cannot start; read() returns a uint8 BGR
    frame, or None when none is available right now; close() is safe to call twice."""

    name = "source"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None: ...

    def skip(self) -> bool:
        """Let a frame go by unseen (a kiosk with nobody in front looks at few), as cheaply as
        the source can (a camera's frame not decoded; by default, read and dropped); False when
        no frame was there, as read() returns None."""
        return self.read() is not None

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        pass

    def media_time(self) -> float | None:
        """Seconds into a recording of the frame last read, None for a live camera. A recording
        keeps its own clock, so whatever speed it is played at, the kiosk sees the same seconds
        go by (the settling, holding and leaving it judges people by) and decides the same."""
        return None


class Pacer:
    """Paces a played-back source at `fps` (0: as fast as it can)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.period:
            return
        self.next = max(self.next + self.period, time.monotonic() - self.period)
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
