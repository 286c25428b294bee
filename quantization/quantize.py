"""NNCF post-training int8 quantization of an exported IR, with accuracy control.

Calibration images come from the training part of a data folder, validation images from the
part the model was validated on (the same grouped split training used), and both go through
the kiosk's own preprocessing (edge.preprocess) with the model's own normalisation. Accuracy
control keeps int8 deciding as the float model decides (the kiosk's decision rule, at the
model's threshold) on the validation photos and a fresh kiosk view of every training photo:
agreement needs no labels, so it is measured on hundreds of inputs where a sensitivity on a
validation part's few dozen mpox photos cannot see a change of one. The int8 IR keeps every
metadata field of the float one and adds how it was made and what it measured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nncf
import numpy as np
import openvino as ov
from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

from edge.contract import MPOX_LABEL, OTHER_LABEL, RT_SECTION, ModelInfo, decide, softmax
from edge.engine import model_info, read_model
from edge.errors import ModelError
from quantization.settings import Settings
from training.data import ImageSet, validation_split
from training.dermnet import OtherSource
from training.errors import DataError
from training.experiment import VAL_FRACTION, prepare
from training.metrics import screening_metrics

log = logging.getLogger(__name__)

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def read_ir(xml: str | Path) -> tuple[ov.Model, ModelInfo]:
    """The IR with its metadata, its weights in f32 (upcast if the file stores fp16)."""
    xml = Path(xml)
    if not xml.is_file():
        raise ModelError(f"model file not found: {xml}")
    model = read_model(ov.Core(), xml)
    info = model_info(model, str(xml))
    if has_fp16_weights(model):
        log.info("%s stores fp16-compressed weights: upcast %d constants to f32 for NNCF", xml, upcast_fp16_weights(model))
    return model, info


def has_fp16_weights(model: ov.Model) -> bool:
    return any(op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.f16 for op in model.get_ops())


def upcast_fp16_weights(model: ov.Model) -> int:
    """Replace each fp16 weight and its decompression Convert by an f32 constant, in place.

    NNCF only turns f32 weights into int8 ones: an fp16-compressed IR would otherwise come out
    with its weights still fp16 and no smaller. The values are those the fp16 IR runs with.
    Returns how many constants were upcast."""
    count = 0
    for convert in model.get_ordered_ops():
        if convert.get_type_name() != "Convert" or convert.get_output_element_type(0) != ov.Type.f32:
            continue
        const = convert.input_value(0).get_node()
        if const.get_type_name() != "Constant" or const.get_element_type() != ov.Type.f16:
            continue
        f32 = ov.opset13.constant(const.get_data().astype(np.float32))
        f32.set_friendly_name(const.get_friendly_name())
        for target in convert.output(0).get_target_inputs():
            target.replace_source_output(f32.output(0))
        count += 1
    model.validate_nodes_and_infer_types()
    return count


def predict(compiled: ov.CompiledModel, inputs: np.ndarray) -> np.ndarray:
    request = compiled.create_infer_request()
    return softmax(np.concatenate([np.asarray(request.infer({0: x})[compiled.outputs[0]], np.float32) for x in inputs]))


def score(labels: np.ndarray, probs: np.ndarray, info: ModelInfo) -> dict:
    m = screening_metrics(labels, probs, list(info.labels), info.mpox_threshold)
    pc = m["per_class"].get(MPOX_LABEL, {})
    return {"accuracy": m["accuracy"], "mpox_sensitivity": pc.get("recall", float("nan")),
            "mpox_specificity": pc.get("specificity", float("nan")), "n": m["n"]}


def quantize_model(model: ov.Model, info: ModelInfo, calibration: np.ndarray, validation: np.ndarray,
                   validation_labels: np.ndarray, control: np.ndarray, settings: Settings) -> tuple[ov.Model, dict]:
    """int8 model and a report: fp32 and int8 validation figures, what stayed in float.
    `control`: the inputs on which accuracy control keeps int8's decisions the float model's."""
    calibration_set = nncf.Dataset(list(calibration))
    common = dict(preset=settings.nncf_preset(), subset_size=min(settings.subset_size, len(calibration)),
                  fast_bias_correction=settings.fast_bias_correction, target_device=nncf.TargetDevice.CPU)
    if settings.accuracy_control:
        reference = ov.Core().compile_model(model, "CPU", F32)

        def validate(compiled: ov.CompiledModel, items) -> tuple[float, None]:
            x = np.stack(list(items))  # NNCF may pass a part of the control set: the float answers come with it
            ours, theirs = (decide(predict(c, x), info.labels, info.mpox_threshold) for c in (compiled, reference))
            return float((ours == theirs).mean()), None  # None: rank layers by output change

        int8 = nncf.quantize_with_accuracy_control(model, calibration_set, nncf.Dataset(list(control)), validate,
                                                   max_drop=settings.max_drop, drop_type=nncf.DropType.ABSOLUTE,
                                                   advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                                                       max_num_iterations=settings.max_iterations), **common)
    else:
        int8 = nncf.quantize(model, calibration_set, **common)
    core = ov.Core()
    fp32 = score(validation_labels, predict(core.compile_model(model, "CPU", F32), validation), info)
    q = score(validation_labels, predict(core.compile_model(int8, "CPU"), validation), info)
    report = {"fp32": fp32, "int8": q, "float_layers": float_layers(model, int8)}
    return int8, report


def float_layers(fp32: ov.Model, int8: ov.Model) -> list[str]:
    """Convolutions and MatMuls of the model whose weights NNCF left in float: those it
    does not quantize and those accuracy control reverted."""
    quantized = set()
    for op in int8.get_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul"):
            producers = [i.get_source_output().get_node() for i in op.inputs()]
            if any(p.get_type_name() == "FakeQuantize" or "fq_weights" in p.get_friendly_name() for p in producers):
                quantized.add(op.get_friendly_name())
    return sorted(op.get_friendly_name() for op in fp32.get_ops()
                  if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul") and op.get_friendly_name() not in quantized)


def with_metadata(int8: ov.Model, info: ModelInfo, settings: Settings, report: dict, calibration_size: int) -> ov.Model:
    """Copy the float model's facts into the int8 model and add its own."""
    extra = {
        **info.extra, "precision": "int8", "quantization": f"nncf {nncf.__version__} "
        + ("quantize_with_accuracy_control" if settings.accuracy_control else "quantize"),
        "quantization_preset": settings.preset, "fast_bias_correction": str(settings.fast_bias_correction),
        "max_drop": f"{settings.max_drop:g}", "calibration_kiosk_views": str(settings.kiosk_views), "max_iterations": str(settings.max_iterations), "calibration_size": str(calibration_size),
        "float_layers": ",".join(report["float_layers"]),
    }
    for precision in ("fp32", "int8"):
        for k in ("accuracy", "mpox_sensitivity", "mpox_specificity"):
            extra[f"{precision}_validation_{k}"] = f"{report[precision][k]:.4f}"
    extra["validation_size"] = str(report["int8"]["n"])
    full = ModelInfo(**{**info.__dict__, "extra": extra})
    for key, value in full.to_rt_info().items():
        int8.set_rt_info(value, [RT_SECTION, key])
    return int8


def model_inputs(images: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 RGB images at the model's size, as training decoded them with the kiosk's own
    preprocessing -> (N, 1, 3, S, S) float32 inputs, normalised as the model states."""
    x = (images.astype(np.float32) / 255 - np.array(info.mean, np.float32)) / np.array(info.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)[:, None])


def training_data(data_dir: str | Path, info: ModelInfo, other: OtherSource | None = None) -> tuple[ImageSet, np.ndarray]:
    """The model's own training data (with DermNet's photos when it was trained with them)
    and its near-duplicate groups, refused when its classes are not the model's labels."""
    ds, groups = prepare(data_dir, other)
    if tuple(ds.classes) != info.labels:
        hint = " (a model with an 'Other' class needs --other-from, the DermNet cache it was trained with)" if OTHER_LABEL in info.labels else ""
        raise DataError(f"{data_dir} has classes {', '.join(ds.classes)} but the model {info.name} was trained on "
                        f"{', '.join(info.labels)}{hint}; quantize with data of the model's own classes")
    return ds, groups


def calibration_inputs(images: np.ndarray, info: ModelInfo, settings: Settings) -> np.ndarray:
    """The calibration images, and with settings.kiosk_views one view of each as the kiosk's
    box shows it (training/augment.py: held on skin or before a wall, blurred, noisy,
    compressed), shuffled together: int8 ranges must cover what the kiosk feeds the model."""
    inputs = model_inputs(images, info)
    if settings.kiosk_views:
        inputs = np.concatenate([inputs, kiosk_view_inputs(images, info, settings.seed + 11)])
    return inputs[np.random.default_rng(settings.seed).permutation(len(inputs))]


def control_inputs(validation_images: np.ndarray, training_images: np.ndarray, info: ModelInfo, settings: Settings) -> np.ndarray:
    """What accuracy control compares int8 with float on: the validation photos and one kiosk
    view of each training photo, drawn apart from the calibration's views."""
    return np.concatenate([model_inputs(validation_images, info), kiosk_view_inputs(training_images, info, settings.seed + 23)])


def kiosk_view_inputs(images: np.ndarray, info: ModelInfo, seed: int) -> np.ndarray:
    """One view of each image as the kiosk's box shows it (training/augment.py), as inputs."""
    from training.augment import augmented_views

    return model_inputs(augmented_views(images, 1, seed)[0], info)


def quantize_ir(xml: str | Path, data_dir: str | Path, out: str | Path, settings: Settings | None = None,
                other: OtherSource | None = None) -> dict:
    """`mpox quantize`: float IR + its training data -> int8 IR with metadata. Calibrated on
    the training part of the split training used, validated on its validation part."""
    out, settings = Path(out), settings or Settings()
    if out.suffix != ".xml":
        raise ModelError(f"--out must name an .xml file, got {out}")
    model, info = read_ir(xml)
    if info.extra.get("precision") == "int8":
        raise ModelError(f"{xml} is already int8; quantize the float model")
    ds, groups = training_data(data_dir, info, other)
    tr, va = validation_split(ds.labels, groups, VAL_FRACTION, settings.seed)
    calib_idx = np.random.default_rng(settings.seed).permutation(tr)[:settings.subset_size]
    calibration = calibration_inputs(ds.images[calib_idx], info, settings)
    int8, report = quantize_model(model, info, calibration, model_inputs(ds.images[va], info), ds.labels[va],
                                  control_inputs(ds.images[va], ds.images[tr], info, settings), settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(with_metadata(int8, info, settings, report, len(calib_idx)), out, compress_to_fp16=False)
    log.info("int8 %s -> %s: %s", info.name, out, report)
    return report
