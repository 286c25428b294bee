"""What an output may see of the kiosk and ask of it: the port, not the kiosk.

Outputs (edge/outputs/, edge/web/) are given a KioskPort: the frozen status snapshot, the model
facts, the latest frame for the live picture, the frozen config, and a few commands. They never
hold the engine, the store or the state machine, so a web request cannot reach into the loop
and an output cannot change how the kiosk screens. edge.kiosk.Kiosk implements it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from edge.capture import Frame
    from edge.config import KioskConfig
    from edge.decision import Screening
    from edge.events import KioskStatus, ModelFacts


@dataclass(frozen=True)
class Checked:
    """A photo judged by the kiosk's rule and handed to its loop (recorded as an upload)."""

    screening: Screening
    heatmap: np.ndarray | None  # where the model saw the class it chose; None for a model without one


class KioskPort(Protocol):
    cfg: KioskConfig  # frozen: the settings the kiosk runs with

    @property
    def status(self) -> KioskStatus: ...  # replaced whole, never changed: safe from any thread

    @property
    def model(self) -> ModelFacts: ...

    @property
    def preview(self) -> Frame | None: ...  # the latest frame, never written to

    def agree(self) -> None:
        """The person in front of the kiosk tapped "I agree" (from any thread)."""

    def check_photo(self, image: np.ndarray) -> Checked:
        """A photo judged by the kiosk's model and rule, recorded through the loop (any thread)."""

    def explain(self, frame: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray | None:
        """Where the model saw the class it chose in a region of a frame (any thread), or None."""

    def stop_for_model_change(self) -> None:
        """Stop between screenings, so that the kiosk starts again on the model now current."""

    def warn(self, about: str, problem: str | None) -> None:
        """An output's standing problem about one thing (any thread), shown with the status
        (/healthz, the dashboard) until it reports None for it; screening goes on."""


class Port:
    """A KioskPort onto a running kiosk that lets nothing else through: what open_outputs
    hands to the outputs, so that none can reach the engine, the store or the state machine."""

    __slots__ = ("_kiosk",)

    def __init__(self, kiosk: KioskPort) -> None:
        self._kiosk = kiosk

    @property
    def cfg(self) -> KioskConfig:
        return self._kiosk.cfg

    @property
    def status(self) -> KioskStatus:
        return self._kiosk.status

    @property
    def model(self) -> ModelFacts:
        return self._kiosk.model

    @property
    def preview(self) -> Frame | None:
        return self._kiosk.preview

    def agree(self) -> None:
        self._kiosk.agree()

    def check_photo(self, image: np.ndarray) -> Checked:
        return self._kiosk.check_photo(image)

    def explain(self, frame: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray | None:
        return self._kiosk.explain(frame, roi)

    def stop_for_model_change(self) -> None:
        self._kiosk.stop_for_model_change()

    def warn(self, about: str, problem: str | None) -> None:
        self._kiosk.warn(about, problem)
