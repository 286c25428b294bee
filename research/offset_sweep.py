"""How a CV run's folds answer as the "Other" class's logit offset moves: on the validation's
kiosk views (what chose the offset) and on the test part (which only describes). Reads the
fold folders `mpox train --cv --other-from` writes (metrics.json with other_bias,
validation_predictions.npz, test_predictions.npz).

    python -m research.offset_sweep runs/cv/skin-other
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edge.contract import MPOX_LABEL, OTHER_LABEL, decide
from training.metrics import balanced_accuracy, decide_with_offset, shift_class

OFFSETS = np.arange(-3.0, 0.51, 0.5)


def sweep(fold_dir: Path, classes: list[str]) -> list[dict]:
    """One row per offset: validation figures, and the test part's MSID and DermNet figures."""
    other, mpox = classes.index(OTHER_LABEL), classes.index(MPOX_LABEL)
    chosen = json.loads((fold_dir / "metrics.json").read_text())["other_bias"]
    val, test = np.load(fold_dir / "validation_predictions.npz"), np.load(fold_dir / "test_predictions.npz")
    val_probs = shift_class(val["view_probs"], other, -chosen)  # the model as trained
    test_probs = shift_class(test["probs"], other, -chosen)
    own = np.array([not p.startswith("dermnet:") for p in test["paths"]])
    dermnet_other = ~own & (test["labels"] == other)
    rows = []
    for offset in sorted({*OFFSETS.tolist(), chosen}):
        threshold, vd = decide_with_offset(val["labels"], val_probs, classes, other, offset)
        t = shift_class(test_probs, other, offset)
        td, named = decide(t, classes, threshold), val["labels"] != other
        rows.append({"offset": float(offset), "chosen": offset == chosen, "threshold": threshold,
                     "val_balanced": balanced_accuracy(val["labels"], vd, len(classes)),
                     "val_other_called_mpox": float((vd[~named] == mpox).mean()),
                     "test_msid_accuracy": float((td[own] == test["labels"][own]).mean()),
                     "test_msid_argmax": float((t[own].argmax(1) == test["labels"][own]).mean()),
                     "test_mpox_sensitivity": float((td[own & (test["labels"] == mpox)] == mpox).mean()),
                     "test_dermnet_called_mpox": float((td[dermnet_other] == mpox).mean())})
    return rows


def fold_classes(fold_dir: Path) -> list[str]:
    import torch  # research may use training's files; only this reads a checkpoint

    return torch.load(fold_dir / "model.pt", map_location="cpu", weights_only=False)["classes"]


def main(run_dir: str) -> None:
    for fold_dir in sorted(Path(run_dir).glob("fold*")):
        if (fold_dir / "validation_predictions.npz").exists():
            classes = fold_classes(fold_dir)
            print(fold_dir.name)
            for row in sweep(fold_dir, classes):
                print("  " + " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main(sys.argv[1])
