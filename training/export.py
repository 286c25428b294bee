"""Checkpoint -> OpenVINO IR (+ ONNX) with a static 1x3xSxS input, two outputs (the logits,
then "cam": a class activation map per class, training/cam.py), and the model's facts in the
IR's rt_info (read back by edge/engine.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from edge.contract import OTHER_LABEL, RT_SECTION, ModelInfo
from training.cam import CAM_OUTPUT, WithCam
from training.dermnet import LICENCE
from training.errors import TrainingError
from training.train import load_checkpoint

log = logging.getLogger(__name__)

# Above this many parameters the IR's weights are stored as fp16 (computed in f32 at run
# time): keeps the 3.5M-parameter EfficientNet's file small enough to ship in the repo.
FP16_ABOVE_PARAMETERS = 1_000_000


def model_info(ckpt: dict, name: str | None, version: str) -> ModelInfo:
    val = ckpt.get("val_metrics", {})
    return ModelInfo(
        labels=tuple(ckpt["classes"]), mean=tuple(ckpt["mean"]), std=tuple(ckpt["std"]), input_size=int(ckpt["input_size"]),
        name=name or ckpt["config"]["model"], version=version, mpox_threshold=float(ckpt["threshold"]),
        data_hash=ckpt["data_hash"], parameters=int(ckpt["parameters"]),
        extra={"validation_accuracy": f"{val.get('accuracy', float('nan')):.4f}",
               "validation_mpox_sensitivity": f"{val.get('per_class', {}).get('Monkeypox', {}).get('recall', float('nan')):.4f}",
               "best_epoch": str(ckpt.get("best_epoch", "")), "framework": f"torch {torch.__version__}",
               "threshold_rule": ckpt.get("threshold_rule", "chosen on this run's validation part"),
               "training_data_terms": training_data_terms(ckpt)},
    )


MSID_TERMS = "MSID (Bala et al. 2023, doi:10.17632/r9bfpnvyxr): CC BY 4.0"


def training_data_terms(ckpt: dict) -> str:
    """Under which terms the model's training data may be used: MSID's, and DermNet's
    non-commercial terms for a model that saw DermNet (skin-pretrained or with 'Other')."""
    dermnet = ckpt["config"].get("skin") or OTHER_LABEL in ckpt["classes"]
    return MSID_TERMS + (f"; {LICENCE}" if dermnet else "")


def cam_facts(model: WithCam, input_size: int) -> dict[str, str]:
    """What the IR says about its second output (rt_info, section mpox)."""
    with torch.no_grad():
        fmap = model.model.feature_map(torch.zeros(1, 3, input_size, input_size))
    return {"cam_output": CAM_OUTPUT, "cam_method": model.method,
            "cam_feature_map": "x".join(str(v) for v in fmap.shape[1:])}  # channels x h x w


def to_openvino(model: torch.nn.Module, info: ModelInfo) -> ov.Model:
    """The IR: outputs "logits" [1, C] and "cam" [1, C, h, w] (training/cam.py)."""
    s = info.input_size
    wrapped = WithCam(model.eval()).eval()
    ov_model = ov.convert_model(wrapped, example_input=torch.zeros(1, 3, s, s), input=[1, 3, s, s])
    ov_model.outputs[0].get_tensor().set_names({"logits"})
    ov_model.outputs[1].get_tensor().set_names({CAM_OUTPUT})
    ov_model.inputs[0].get_tensor().set_names({"image"})
    for key, value in {**info.to_rt_info(), **cam_facts(wrapped, s)}.items():
        ov_model.set_rt_info(value, [RT_SECTION, key])
    # OpenVINO model_api's names, so its tools read the same facts.
    ov_model.set_rt_info("Classification", ["model_info", "model_type"])
    ov_model.set_rt_info(" ".join(info.labels), ["model_info", "labels"])
    ov_model.set_rt_info(" ".join(f"{255 * m:.6g}" for m in info.mean), ["model_info", "mean_values"])
    ov_model.set_rt_info(" ".join(f"{255 * v:.6g}" for v in info.std), ["model_info", "scale_values"])
    return ov_model


def to_onnx(model: torch.nn.Module, info: ModelInfo, path: Path) -> None:
    import onnx

    s = info.input_size
    wrapped = WithCam(model.eval()).eval()
    torch.onnx.export(wrapped, (torch.zeros(1, 3, s, s),), str(path), input_names=["image"],
                      output_names=["logits", CAM_OUTPUT], dynamo=True, external_data=False)
    proto = onnx.load(str(path))
    for key, value in {**info.to_rt_info(), **cam_facts(wrapped, s)}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def pooled_threshold(ckpt: dict, cv_run: Path) -> tuple[float, int]:
    """The median of the mpox thresholds chosen on validation data by this final run and by
    every finished fold of a CV run of the same recipe, and how many were pooled.

    Each threshold is the second-lowest mpox probability of ~30 validation mpox images (the
    rule for >= 95% sensitivity): one hard image moves it tenfold (0.017 to 0.24 between
    runs of one recipe). The median of several validation parts is a steadier operating
    point; no test image is used."""
    config_file = cv_run / "config.json"
    if not config_file.is_file():
        raise TrainingError(f"not a CV run folder (no config.json): {cv_run}")
    cv_config = json.loads(config_file.read_text())["config"]
    ours = ckpt["config"]
    for key in ("model", "body"):
        if cv_config.get(key) != ours.get(key):
            raise TrainingError(f"{cv_run} is a CV run of another model ({key} {cv_config.get(key)!r}, not {ours.get(key)!r})")
    folds = [json.loads(f.read_text())["mpox_threshold"] for f in sorted(cv_run.glob("fold*/metrics.json"))]
    if not folds:
        raise TrainingError(f"no finished folds in {cv_run}")
    return float(np.median([ckpt["threshold"], *folds])), len(folds) + 1


def export_checkpoint(checkpoint: str | Path, out: str | Path, name: str | None = None, version: str = "1.0.0",
                      onnx: bool = True, fp16_weights: bool | None = None, threshold_from_cv: Path | None = None) -> Path:
    """fp16_weights None: fp16 above FP16_ABOVE_PARAMETERS. Quantize from fp32 weights.
    threshold_from_cv: a CV run of the same recipe whose thresholds are pooled (pooled_threshold)."""
    model, ckpt = load_checkpoint(checkpoint)
    if threshold_from_cv is not None:
        own = ckpt["threshold"]
        ckpt["threshold"], pooled = pooled_threshold(ckpt, Path(threshold_from_cv))
        ckpt["threshold_rule"] = f"median of {pooled} validation-chosen thresholds (this run's: {own:.4f})"
    out = Path(out)
    if out.suffix != ".xml":
        raise TrainingError(f"--out must name an .xml file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    info = model_info(ckpt, name, version)
    ov_model = to_openvino(model, info)
    fp16 = info.parameters > FP16_ABOVE_PARAMETERS if fp16_weights is None else fp16_weights
    ov.save_model(ov_model, out, compress_to_fp16=fp16)
    if onnx:
        to_onnx(model, info, out.with_suffix(".onnx"))
    log.info("exported %s (%d parameters) -> %s", info.name, info.parameters, out)
    return out


def parity(model: torch.nn.Module, xml: Path, inputs: np.ndarray, output: int = 0) -> float:
    """Largest |torch - OpenVINO| difference of the logits (output 0: against model(x)) or
    of the class activation maps (output 1: against WithCam), OpenVINO at true f32 precision."""
    compiled = ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with torch.no_grad():
        x = torch.from_numpy(inputs)
        ref = (model.eval()(x) if output == 0 else WithCam(model.eval())(x)[output]).numpy()
    got = np.concatenate([compiled(x[None])[output] for x in inputs])
    return float(np.abs(ref - got).max())
