"""How often int8 decides as float does, on a model's data folder: its photos and two fresh
kiosk views of each (drawn apart from calibration's and control's), with the accuracy and
mpox-sensitivity change. For choosing quantization settings; the figures go to docs/RESULTS.md.

    python -m quantization.agreement models/fast-mpoxnet.xml --data ../shared/data/msid [--plain]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import openvino as ov

from edge.contract import MPOX_LABEL, decide
from quantization.quantize import (
    F32,
    Settings,
    calibration_inputs,
    control_inputs,
    model_inputs,
    predict,
    quantize_model,
    read_ir,
    training_data,
)
from training.augment import augmented_views
from training.data import validation_split
from training.experiment import VAL_FRACTION

EVAL_SEED = 999


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("xml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--plain", action="store_true", help="without accuracy control")
    args = ap.parse_args()
    settings = Settings(accuracy_control=not args.plain)
    model, info = read_ir(args.xml)
    ds, groups = training_data(args.data, info)
    tr, va = validation_split(ds.labels, groups, VAL_FRACTION, settings.seed)
    calib = np.random.default_rng(settings.seed).permutation(tr)[:settings.subset_size]
    int8, _ = quantize_model(model, info, calibration_inputs(ds.images[calib], info, settings), model_inputs(ds.images[va], info),
                             ds.labels[va], control_inputs(ds.images[va], ds.images[tr], info, settings), settings)
    inputs = np.concatenate([model_inputs(ds.images, info), *(model_inputs(v, info) for v in augmented_views(ds.images, 2, EVAL_SEED))])
    labels, n, m = np.tile(ds.labels, 3), len(ds.images), list(info.labels).index(MPOX_LABEL)
    core = ov.Core()
    fp = decide(predict(core.compile_model(model, "CPU", F32), inputs), info.labels, info.mpox_threshold)
    q = decide(predict(core.compile_model(int8, "CPU"), inputs), info.labels, info.mpox_threshold)
    print(json.dumps({"accuracy_control": settings.accuracy_control, "agreement_photos": float((fp == q)[:n].mean()),
                      "agreement_views": float((fp == q)[n:].mean()),
                      "accuracy_drop_pp": 100 * float((fp == labels).mean() - (q == labels).mean()),
                      "mpox_sensitivity_drop_pp": 100 * float((fp[labels == m] == m).mean() - (q[labels == m] == m).mean())}))


if __name__ == "__main__":
    main()
