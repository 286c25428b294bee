"""OpenVINO inference on an exported model that carries its own facts.

The IR's rt_info (written by training/export.py) holds the labels in order, the input
normalisation and size, the model's name, version and training-data hash, and the mpox
decision threshold, so the runtime never pairs a model with the wrong preprocessing.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from edge.errors import ImageError, ModelError
from edge.preprocess import preprocess

log = logging.getLogger(__name__)

RT_SECTION = "mpox"
MPOX_LABEL = "Monkeypox"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
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
    def from_rt_info(cls, model: ov.Model, source: str) -> ModelInfo:
        if not model.has_rt_info([RT_SECTION]):
            raise ModelError(f"{source} has no '{RT_SECTION}' metadata: export it with `mpox export`")
        raw = {k: v.astype(str) for k, v in model.get_rt_info()[RT_SECTION].items()}
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(xml: Path, sums: Path) -> str:
    """Check the IR's .xml and .bin against a SHA256SUMS file (both must be listed); returns
    the .bin's sha256, the model's identity in the audit log."""
    try:
        listed = {}
        for line in sums.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                listed[name.strip().lstrip("*")] = digest.lower()
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read checksums {sums}: {e}") from None
    actual = {}
    for f in (xml, xml.with_suffix(".bin")):
        if f.name not in listed:
            raise ModelError(f"{f.name} is not listed in {sums}: refusing an unknown model")
        actual[f.name] = sha256_file(f)
        if actual[f.name] != listed[f.name]:
            raise ModelError(f"{f} does not match its checksum in {sums}: the file is corrupt or was replaced")
    return actual[xml.with_suffix(".bin").name]


def read_model(core: ov.Core, xml: str | Path) -> ov.Model:
    """core.read_model, with OpenVINO's multi-line error cut to a ModelError naming the file."""
    try:
        return core.read_model(xml)
    except RuntimeError as e:
        raise ModelError(f"cannot read model {xml}: {str(e).strip().splitlines()[0]}") from None


class Engine:
    """One compiled model and one infer request: frame or tensor in, probabilities out.
    With `checksums` (a SHA256SUMS file) the model must be listed there and match."""

    def __init__(self, xml: str | Path, device: str = "CPU", config: dict | None = None, checksums: Path | None = None) -> None:
        xml = Path(xml)
        if not xml.is_file():
            raise ModelError(f"model file not found: {xml}")
        if not xml.with_suffix(".bin").is_file():
            raise ModelError(f"model weights not found: {xml.with_suffix('.bin')}")
        self.sha256 = verify_checksums(xml, checksums) if checksums is not None else sha256_file(xml.with_suffix(".bin"))
        core = ov.Core()
        model = read_model(core, xml)
        self.info = ModelInfo.from_rt_info(model, str(xml))
        self._check_shapes(model, xml)
        try:
            self.compiled = core.compile_model(model, device, config or {})
        except RuntimeError as e:
            raise ModelError(f"cannot compile {xml} for {device}: {str(e).strip().splitlines()[0]}") from None
        self.request = self.compiled.create_infer_request()
        self.path = xml
        self.device = device
        try:
            self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except RuntimeError:  # a device without the property
            self.precision = "device default"
        log.info("model %s %s on %s, inference precision %s", self.info.name, self.info.version, device, self.precision)
        s = self.info.input_size
        self._input = np.empty((1, 3, s, s), np.float32)

    def _check_shapes(self, model: ov.Model, xml: Path) -> None:
        s = self.info.input_size
        shape = model.inputs[0].get_partial_shape()
        if len(model.inputs) != 1 or not shape.is_static or list(shape.to_shape()) != [1, 3, s, s]:
            raise ModelError(f"{xml}: expected one input of shape [1, 3, {s}, {s}], got {shape}")
        out = model.outputs[0].get_partial_shape()
        if not out.is_static or list(out.to_shape()) != [1, len(self.info.labels)]:
            raise ModelError(f"{xml}: expected output [1, {len(self.info.labels)}] for labels {self.info.labels}, got {out}")

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """float32 [1,3,S,S] model input -> class probabilities [n_classes]."""
        logits = self.request.infer({0: tensor}, share_inputs=True)[self.compiled.outputs[0]]  # no copy of the input
        return softmax(np.asarray(logits, np.float32)[0])

    def classify_frame(self, frame: np.ndarray, roi=None) -> np.ndarray:
        """uint8 BGR frame (ROI of it) -> class probabilities."""
        i = self.info
        return self.infer(preprocess(frame, roi, i.input_size, i.mean, i.std, self._input))

    def label(self, probs: np.ndarray) -> str:
        return self.info.labels[int(decide(probs, self.info.labels, self.info.mpox_threshold)[0])]


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 BGR, or ImageError saying why not."""
    try:
        raw = np.fromfile(str(path), np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror or e}") from None
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    except cv2.error as e:  # e.g. a header claiming more pixels than OPENCV_IO_MAX_IMAGE_PIXELS
        raise ImageError(f"{path}: cannot be decoded ({str(e).strip().splitlines()[-1][:120]})") from None
    if image is None:
        raise ImageError(f"{path}: not a readable image")
    return image
