"""How a model is quantized: one dataclass, the defaults of `mpox quantize` and `quantize-cv`.
Kept apart from quantize.py so the command line can read its defaults without importing NNCF."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nncf


@dataclass(frozen=True)
class Settings:
    """How a model is quantized. Defaults chosen by measurement (docs/RESULTS.md, int8)."""

    subset_size: int = 300
    preset: str = "performance"  # symmetric activations; "mixed": asymmetric
    fast_bias_correction: bool = True
    max_drop: float = 0.005  # share of the control inputs whose decision int8 may change (accuracy control)
    accuracy_control: bool = True
    seed: int = 0
    max_iterations: int = 10  # layers accuracy control may revert to float, one ranking step each
    kiosk_views: bool = True  # calibrate on a kiosk view of each calibration photo too

    def nncf_preset(self) -> nncf.QuantizationPreset:
        import nncf  # heavy (it imports torch): only when quantizing

        return {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}[self.preset]


def default(name: str):
    """A Settings field's default, for the command line's options."""
    return next(f.default for f in fields(Settings) if f.name == name)
