"""fp32 vs int8, fold by fold: each fold's model is exported, calibrated on its own training
part (validated on the validation part held inside it), and both precisions are tested on the
fold's held-out images through the kiosk's preprocessing."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov

from edge.contract import decide
from quantization.quantize import (
    F32,
    Settings,
    calibration_inputs,
    control_inputs,
    model_inputs,
    predict,
    quantize_model,
    score,
    with_metadata,
)
from training.data import validation_split
from training.dermnet import OtherSource
from training.experiment import VAL_FRACTION, dataset_folds, prepare, write_json
from training.export import model_info, to_openvino
from training.train import load_checkpoint

log = logging.getLogger(__name__)


def fold_int8(checkpoint: Path, train_idx: np.ndarray, test_idx: np.ndarray, ds, groups, settings: Settings,
              save: bool = False) -> dict:
    """With `save`, the fold's float and int8 IRs are kept beside its checkpoint (model.xml,
    model-int8.xml), for `mpox simulate --runs`."""
    model, ckpt = load_checkpoint(checkpoint)
    info = model_info(ckpt, None, "cv")
    if list(info.labels) != ds.classes:
        raise ValueError(f"{checkpoint}: classes {info.labels} differ from the data's {ds.classes}")
    with tempfile.TemporaryDirectory() as tmp:  # the float IR as `mpox export` writes it
        xml = Path(tmp) / "fp32.xml"
        ov.save_model(to_openvino(model, info), xml, compress_to_fp16=False)
        fp32_ir = ov.Core().read_model(xml)
    tr, va = validation_split(ds.labels[train_idx], groups[train_idx], VAL_FRACTION, ckpt["config"]["seed"])
    calib = np.random.default_rng(settings.seed).permutation(train_idx[tr])[:settings.subset_size]
    int8, report = quantize_model(fp32_ir, info, calibration_inputs(ds.images[calib], info, settings),
                                  model_inputs(ds.images[train_idx[va]], info), ds.labels[train_idx[va]],
                                  control_inputs(ds.images[train_idx[va]], ds.images[train_idx[tr]], info, settings), settings)
    if save:
        ov.save_model(fp32_ir, checkpoint.parent / "model.xml", compress_to_fp16=False)
        ov.save_model(with_metadata(int8, info, settings, report, len(calib)), checkpoint.parent / "model-int8.xml",
                      compress_to_fp16=False)
    test = model_inputs(ds.images[test_idx], info)
    core = ov.Core()
    p32 = predict(core.compile_model(fp32_ir, "CPU", F32), test)
    p8 = predict(core.compile_model(int8, "CPU"), test)
    labels = ds.labels[test_idx]
    own = np.array([not ds.paths[i].startswith("dermnet:") for i in test_idx], bool)  # figures on the data folder's photos
    return {"fp32": score(labels[own], p32[own], info), "int8": score(labels[own], p8[own], info),
            "top1_agreement": float((p32[own].argmax(1) == p8[own].argmax(1)).mean()),
            "decision_agreement": float((decide(p32, info.labels, info.mpox_threshold) == decide(p8, info.labels, info.mpox_threshold)).mean()),
            "max_probability_change": float(np.abs(p32 - p8).max()), "float_layers": report["float_layers"],
            "validation": {k: report[k] for k in ("fp32", "int8")}}


def int8_cv(data_dir: str | Path, checkpoints: str, out: Path, folds: int, settings: Settings, save: bool = False,
            only_folds: tuple[int, ...] = (), other: OtherSource | None = None) -> dict:
    """Every fold whose checkpoint exists (`checkpoints` has a '{fold}' placeholder), or only_folds;
    the folds split as training split them (with DermNet's photos when `other` says so)."""
    ds, groups = prepare(data_dir, other)
    rows = []
    for k, (tr, te) in enumerate(dataset_folds(ds, groups, folds, settings.seed)):
        ckpt = Path(checkpoints.format(fold=k))
        if only_folds and k not in only_folds:
            continue
        if not ckpt.is_file():
            log.warning("fold %d: no checkpoint at %s, skipped", k, ckpt)
            continue
        row = {"fold": k, **fold_int8(ckpt, tr, te, ds, groups, settings, save)}
        log.info("fold %d: %s", k, json.dumps({p: row[p] for p in ("fp32", "int8", "top1_agreement")}))
        rows.append(row)
    figures = [f"{p}.{m}" for p in ("fp32", "int8") for m in ("accuracy", "mpox_sensitivity", "mpox_specificity")]
    value = lambda r, f: r[f.split(".")[0]][f.split(".")[1]]  # noqa: E731
    summary = {f: float(np.mean([value(r, f) for r in rows])) for f in figures} if rows else {}
    if rows:
        summary["top1_agreement"] = float(np.mean([r["top1_agreement"] for r in rows]))
        summary["accuracy_drop_pp"] = 100 * (summary["fp32.accuracy"] - summary["int8.accuracy"])
        summary["mpox_sensitivity_drop_pp"] = 100 * (summary["fp32.mpox_sensitivity"] - summary["int8.mpox_sensitivity"])
        summary["folds"] = len(rows)
    result = {"settings": settings.__dict__, "summary": summary, "per_fold": rows}
    write_json(out, result)
    return result
