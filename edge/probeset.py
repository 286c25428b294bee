"""A bundle's probe set: a few labelled pictures that show a model means what it claims.

The install probe of edge/models.py proves only that a model runs (finite probabilities that
sum to 1): random weights that call everyone "mpox", or a model whose labels are swapped,
pass it. So the authority puts a small probe set into every bundle (authority/signing.py:
2-4 pictures per class, listed in the signed SHA256SUMS with the model, so no picture can be
swapped), runs the model on it when it signs, and writes down how many it got right and the
least a kiosk may get (that count less a margin, for a kiosk's other device or precision).
The kiosk runs the same pictures through the model it is about to install and refuses it
below that count: a model that is not the one the authority measured, or that this kiosk's
runtime (device, precision) turns into another, never goes in.

Each picture is run exactly as the kiosk runs a photo (`mpox classify`, /check): decoded by
edge.images, the whole picture preprocessed and classified by Engine.classify_frame, labelled
by the kiosk's rule (edge.contract.decide) at the model's own mpox threshold, so the figure
does not move with a site's `model.mpox_threshold`.

The pictures are PNG, lossless: every kiosk decodes the very pixels the authority measured,
on any CPU, and the figure is the model's on the chosen pictures, not on compression
artefacts (measured: re-encoded as JPEG at quality 75 to 95, the two Normal demo pictures
turn "Monkeypox" for the shipped Fast-MpoxNet 2.1.1, which gets 11 of 12 on the PNGs).

The manifest, PROBE.json in the bundle:

    {"format": 1, "pictures": [{"file": "probe-01.png", "label": "Chickenpox"}, ...],
     "measured_right": 11, "required_right": 9, "measured_with": "OpenVINO 2026.4.1 CPU bf16",
     "attribution": "..."}
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edge.contract import decide
from edge.engine import Engine
from edge.errors import ModelError

MANIFEST = "PROBE.json"
PICTURE_NAME = re.compile(r"^probe-\d{2,3}\.png$")
MAX_PICTURES = 64  # 2-4 a class is the intent; a bundle with more is not ours
MAX_PICTURE_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 64 << 10
FORMAT = 1


def picture_name(i: int) -> str:
    """The bundle member of the i-th probe picture (from 1)."""
    return f"probe-{i:02d}.png"


@dataclass(frozen=True)
class ProbePicture:
    file: str  # its member name in the bundle (PICTURE_NAME)
    label: str  # the right answer: one of the model's labels


@dataclass(frozen=True)
class ProbeSet:
    pictures: tuple[ProbePicture, ...]
    measured_right: int  # what the model got right when the authority signed it
    required_right: int  # the least a kiosk accepts: measured_right less the margin
    measured_with: str = ""  # the runtime it was measured with (for the reader)
    attribution: str = ""  # where the pictures come from and under which terms

    def __post_init__(self) -> None:
        n = len(self.pictures)
        if not 0 < n <= MAX_PICTURES:
            raise ValueError(f"a probe set holds 1 to {MAX_PICTURES} pictures, not {n}")
        files = [p.file for p in self.pictures]
        if len(set(files)) != n or not all(PICTURE_NAME.match(f) for f in files):
            raise ValueError("probe picture names must be distinct probe-NN.png")
        if not all(isinstance(p.label, str) and p.label for p in self.pictures):
            raise ValueError("every probe picture needs a label")
        if not 0 < self.required_right <= self.measured_right <= n:
            raise ValueError(f"expected 0 < required_right ({self.required_right}) <= measured_right ({self.measured_right}) "
                             f"<= pictures ({n})")

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "pictures": [{"file": p.file, "label": p.label} for p in self.pictures],
                           "measured_right": self.measured_right, "required_right": self.required_right,
                           "measured_with": self.measured_with, "attribution": self.attribution}, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ProbeSet:
        """The manifest read back, or ValueError saying what is wrong with it."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ValueError(f"not a format {FORMAT} probe manifest")
            pictures = tuple(ProbePicture(str(p["file"]), str(p["label"])) for p in body["pictures"])
            counts = body["measured_right"], body["required_right"]
            if not all(type(c) is int for c in counts):
                raise ValueError("measured_right and required_right must be whole numbers")
            return cls(pictures, *counts, str(body.get("measured_with", "")), str(body.get("attribution", "")))
        except (UnicodeDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"malformed: {type(e).__name__} {e}") from None


@dataclass(frozen=True)
class Agreement:
    """How a model answered a probe set."""

    right: int
    total: int
    mistakes: tuple[tuple[str, str], ...]  # (right label, the model's answer) per wrong picture

    def wrong(self) -> str:
        """"3 Chickenpox as Monkeypox, 1 Normal as Measles": what a swapped label looks like."""
        return ", ".join(f"{n} {truth} as {said}" for (truth, said), n in Counter(self.mistakes).most_common())


def photo_label(engine: Engine, image: np.ndarray) -> str:
    """A whole photo's label as `mpox classify` and /check give it, at the model's own threshold."""
    info = engine.info
    return info.labels[int(decide(engine.classify_frame(image), info.labels, info.mpox_threshold)[0])]


def agreement(engine: Engine, pictures: Iterable[tuple[np.ndarray, str]]) -> Agreement:
    """The model's answers on (decoded picture, right label) pairs."""
    mistakes, total = [], 0
    for image, label in pictures:
        if label not in engine.info.labels:
            raise ModelError(f"a probe picture is labelled {label!r}, which is not one of {engine.info.name}'s labels "
                             f"({', '.join(engine.info.labels)})")
        total += 1
        said = photo_label(engine, image)
        if said != label:
            mistakes.append((label, said))
    return Agreement(total - len(mistakes), total, tuple(mistakes))
