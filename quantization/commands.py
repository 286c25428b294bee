"""Quantization's commands, as `mpox --help` lists them: imported (with nncf) only when one runs."""

from edge.commands import Registered

COMMANDS = [
    Registered("quantize", "quantization.cli:quantize",
               "Quantize an IR to int8 with NNCF, keeping mpox sensitivity (accuracy control).", "train"),
    Registered("quantize-cv", "quantization.cli:quantize_cv",
               "fp32 vs int8 on every CV fold: calibrate on the fold's training part, test on its held-out part.", "train"),
]
