"""OpenVINO inference on an exported model that carries its own facts.

The IR's rt_info (written by training/export.py) holds the labels in order, the input
normalisation and size, the model's name, version and training-data hash, and the mpox
decision threshold, so the runtime never pairs a model with the wrong preprocessing.

An IR exported since 2.1.1 has a second output, "cam": a class activation map per class
(training/cam.py). The kiosk loop's classify_frame runs the graph without it (exactly the work
of a one-output model); explain_frame runs the whole graph on its own compiled model and infer
request, so a web thread can explain a picture without touching the loop's request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path

import numpy as np
import openvino as ov

from edge.contract import RT_SECTION, ModelInfo, decide, softmax
from edge.errors import ModelError
from edge.heatmap import class_heatmap
from edge.preprocess import preprocess

CAM_OUTPUT = "cam"  # the second output's name (training/cam.py)

log = logging.getLogger(__name__)

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


def model_info(model: ov.Model, source: str) -> ModelInfo:
    """The facts an exported IR carries in its rt_info (edge/contract.py), checked."""
    if not model.has_rt_info([RT_SECTION]):
        raise ModelError(f"{source} has no '{RT_SECTION}' metadata: export it with `mpox export`")
    return ModelInfo.from_metadata({k: v.astype(str) for k, v in model.get_rt_info()[RT_SECTION].items()}, source)


# OpenVINO's errors begin with where they were raised ("Exception from src/...cpp:84:", "Check
# '...' failed at src/...cpp:900:"), lines that say nothing to a technician; the cause follows.
_OV_WHERE = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)\s*")
MAX_REASON = 300


def openvino_reason(e: Exception) -> str:
    """An OpenVINO error in one line: its cause, without the source locations it starts with."""
    lines = []
    for line in str(e).splitlines():
        while (m := _OV_WHERE.match(line)) is not None:
            line = line[m.end():]
        if line.strip():
            lines.append(line.strip())
    reason = " ".join(lines) or type(e).__name__
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 3] + "..."


def read_model(core: ov.Core, xml: str | Path) -> ov.Model:
    """core.read_model, with OpenVINO's multi-line error cut to a ModelError naming the file."""
    weights = Path(xml).with_suffix(".bin")
    try:  # the weights named: OpenVINO then reads it as an IR, without trying (and logging) every other format
        return core.read_model(xml, weights) if weights.is_file() else core.read_model(xml)
    except RuntimeError as e:
        raise ModelError(f"cannot read model {xml}: {openvino_reason(e)}") from None


def logits_only(model: ov.Model) -> ov.Model:
    """The graph that computes output 0 alone: what a one-output IR would run."""
    return ov.Model([model.get_results()[0]], model.get_parameters(), model.get_friendly_name())


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
        self.info = model_info(model, str(xml))
        self.mpox_threshold = self.info.mpox_threshold  # what label and explain_frame decide with: edge/models.py resolves it
        self._check_shapes(model, xml)
        self.explains = self._has_cam(model)
        self.path = xml
        self.device = device
        self._core, self._model, self._config = core, model, config or {}
        self._explainer: tuple[ov.CompiledModel, ov.InferRequest] | None = None  # compiled on first explain_frame
        self._explain_lock = threading.Lock()
        self.compiled = self._compile(logits_only(model) if len(model.outputs) > 1 else model)
        self.request = self.compiled.create_infer_request()
        try:
            self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except RuntimeError:  # a device without the property
            self.precision = "device default"
        log.info("model %s %s on %s, inference precision %s", self.info.name, self.info.version, device, self.precision)
        s = self.info.input_size
        self._input = np.empty((1, 3, s, s), np.float32)

    def _compile(self, model: ov.Model) -> ov.CompiledModel:
        try:
            return self._core.compile_model(model, self.device, self._config)
        except RuntimeError as e:
            raise ModelError(f"cannot compile {self.path} for {self.device}: {openvino_reason(e)}") from None

    def _has_cam(self, model: ov.Model) -> bool:
        """True when the IR has a "cam" output of one map per label ([1, C, h, w])."""
        for out in model.outputs[1:]:
            if CAM_OUTPUT in out.get_names():
                shape = out.get_partial_shape()
                if shape.is_static and len(shape) == 4 and list(shape.to_shape())[:2] == [1, len(self.info.labels)]:
                    return True
                log.warning("%s: its %r output has shape %s, not [1, %d, h, w]: no heatmaps", self.info.name, CAM_OUTPUT,
                            shape, len(self.info.labels))
        return False

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

    def explain_frame(self, frame: np.ndarray, roi=None) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 BGR frame (ROI of it) -> class probabilities and where the model saw the
        decided class (at the effective threshold): a float32 heatmap in [0, 1] of the ROI's size (h x w), 1 at the
        strongest evidence (edge.heatmap.class_heatmap); None for a model without the "cam"
        output. Runs on its own infer request, compiled on first use: safe to call from
        another thread than the kiosk loop's (concurrent calls take turns)."""
        i = self.info
        tensor = preprocess(frame, roi, i.input_size, i.mean, i.std)
        with self._explain_lock:
            if self._explainer is None:
                compiled = self._compile(self._model)
                self._explainer = compiled, compiled.create_infer_request()
            compiled, request = self._explainer
            results = request.infer({0: tensor})
            logits = np.array(results[compiled.outputs[0]], np.float32)[0]
            cam = np.array(results[compiled.output(CAM_OUTPUT)], np.float32)[0] if self.explains else None
        probs = softmax(logits)
        if cam is None:
            return probs, None
        h, w = (frame.shape[:2] if roi is None else (int(roi[3]), int(roi[2])))
        return probs, class_heatmap(cam, int(decide(probs, i.labels, self.mpox_threshold)[0]), (h, w))

    def label(self, probs: np.ndarray) -> str:
        """The class the kiosk's rule gives, at the effective threshold."""
        return self.info.labels[int(decide(probs, self.info.labels, self.mpox_threshold)[0])]
