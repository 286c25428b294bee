"""The model contract: what a model must state about itself and how its output is read.

Numpy only (no OpenVINO), so the decision rules, the web pages and the training code share
one definition: the metadata an exported IR carries in its rt_info (labels in order, input
normalisation and size, name, version, data hash, the mpox threshold), softmax, and the
kiosk's decision rule (mpox first at its sensitivity threshold, else the likeliest class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ModelError

RT_SECTION = "mpox"
MPOX_LABEL = "Monkeypox"
OTHER_LABEL = "Other"  # a skin condition that is none of the other labels (models trained with DermNet's conditions)
REQUIRED_KEYS = ("labels", "mean", "std", "input_size", "model_name", "version", "mpox_threshold")


@dataclass(frozen=True)
class ModelInfo:
    labels: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    name: str
    version: str
    mpox_threshold: float
    data_hash: str = ""
    parameters: int = 0
    extra: dict = field(default_factory=dict)  # every other rt_info field, as strings

    @classmethod
    def from_metadata(cls, raw: dict[str, str], source: str) -> ModelInfo:
        """The model's facts from its metadata strings (the IR's rt_info section), checked."""
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ModelError(f"{source} metadata lacks {', '.join(missing)}")
        try:
            info = cls(
                labels=tuple(raw["labels"].split(",")),
                mean=tuple(float(v) for v in raw["mean"].split(",")),
                std=tuple(float(v) for v in raw["std"].split(",")),
                input_size=int(raw["input_size"]),
                name=raw["model_name"],
                version=raw["version"],
                mpox_threshold=float(raw["mpox_threshold"]),
                data_hash=raw.get("data_hash", ""),
                parameters=int(raw.get("parameters", 0)),
                extra={k: v for k, v in raw.items() if k not in REQUIRED_KEYS and k not in ("data_hash", "parameters")},
            )
        except ValueError as e:
            raise ModelError(f"{source} has malformed metadata: {e}") from None
        if len(info.mean) != 3 or len(info.std) != 3:
            raise ModelError(f"{source} metadata: mean and std need three values each")
        problems = [*(["mean must be finite"] if not all(math.isfinite(v) for v in info.mean) else []),
                    *(["std must be finite and non-zero"] if not all(math.isfinite(v) and v != 0 for v in info.std) else []),
                    *(["mpox_threshold must be between 0 and 1"] if not 0 < info.mpox_threshold < 1 else []),
                    *(["input_size must be 1..4096"] if not 1 <= info.input_size <= 4096 else []),
                    *(["labels must be distinct and non-empty"] if len(set(info.labels)) != len(info.labels) or "" in info.labels
                      else [])]
        if problems:
            raise ModelError(f"{source} metadata: {'; '.join(problems)}")
        return info

    def to_rt_info(self) -> dict[str, str]:
        return {
            "labels": ",".join(self.labels), "mean": ",".join(f"{v:.8g}" for v in self.mean),
            "std": ",".join(f"{v:.8g}" for v in self.std), "input_size": str(self.input_size), "model_name": self.name,
            "version": self.version, "mpox_threshold": f"{self.mpox_threshold:.6g}", "data_hash": self.data_hash,
            "parameters": str(self.parameters), **self.extra,
        }


def decide(probs: np.ndarray, labels: tuple[str, ...] | list[str], threshold: float) -> np.ndarray:
    """Class index per row of probs: mpox when its probability reaches the threshold (chosen
    for sensitivity), else the most likely other class."""
    probs = np.atleast_2d(probs)
    if MPOX_LABEL not in labels:
        return probs.argmax(1)
    m = list(labels).index(MPOX_LABEL)
    others = probs.copy()
    others[:, m] = -np.inf
    return np.where(probs[:, m] >= threshold, m, others.argmax(1))


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
