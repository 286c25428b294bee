"""Choose the quantization settings by measurement: plain nncf.quantize under each setting
of a small grid, scored on the validation part of the data (fp32 vs int8, plus top-1
agreement). The table it prints is in docs/RESULTS.md.

    python -m quantization.sweep --model runs/int8/X-fp32.xml --data ../shared/data/msid
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import openvino as ov

from quantization.quantize import (
    F32,
    Settings,
    calibration_inputs,
    model_inputs,
    predict,
    quantize_model,
    read_ir,
    score,
    training_data,
)
from training.data import validation_split
from training.experiment import VAL_FRACTION


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--subset-sizes", type=int, nargs="+", default=[100, 300])
    args = ap.parse_args()
    model, info = read_ir(args.model)
    ds, groups = training_data(args.data, info)
    tr, va = validation_split(ds.labels, groups, VAL_FRACTION, 0)
    order = np.random.default_rng(0).permutation(tr)
    validation = model_inputs(ds.images[va], info)
    labels = ds.labels[va]
    p32 = predict(ov.Core().compile_model(model, "CPU", F32), validation)
    print(json.dumps({"settings": "fp32", **score(labels, p32, info)}), flush=True)
    for size, preset, fbc in itertools.product(args.subset_sizes, ("performance", "mixed"), (True, False)):
        settings = Settings(subset_size=size, preset=preset, fast_bias_correction=fbc, accuracy_control=False, kiosk_views=False)
        calibration = calibration_inputs(ds.images[order[:size]], info, settings)
        int8, _ = quantize_model(model, info, calibration, validation, labels, validation, settings)
        p8 = predict(ov.Core().compile_model(int8, "CPU"), validation)
        row = {"subset_size": size, "preset": preset, "fast_bias_correction": fbc, **score(labels, p8, info),
               "top1_agreement": float((p8.argmax(1) == p32.argmax(1)).mean()),
               "mean_abs_probability_change": float(np.abs(p8 - p32).mean())}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
