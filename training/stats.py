"""The statistics of the EfficientNet paper, on our folds (scipy.stats).

- fold_homogeneity: do the folds' accuracies differ more than chance? A chi-square test of
  homogeneity on each fold's correct/incorrect counts (p > 0.05: no evidence they differ).
- paired_tests: do two models differ over the same folds? A paired t-test and a Wilcoxon
  signed-rank test on fold accuracies, and McNemar's exact test on the pooled out-of-fold
  predictions (the same test images, so per-image pairs are the most powerful comparison).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from edge.contract import decide


def fold_predictions(run: Path, pattern: str = "fold*/test_predictions.npz", metrics: str = "metrics.json") -> list[dict]:
    """Per fold: indices, labels, probabilities, class order, mpox threshold and decided
    predictions of a CV run folder (or, with pattern and metrics, of the teachers in a cache
    folder)."""
    out = []
    for f in sorted(run.glob(pattern)):
        p = np.load(f)
        m = json.loads((f.parent / metrics).read_text())
        classes = list(m["per_class"])  # screening_metrics keeps the model's class order
        out.append({"index": p["index"], "labels": p["labels"], "probs": p["probs"], "classes": classes,
                    "threshold": m["mpox_threshold"], "pred": decide(p["probs"], classes, m["mpox_threshold"])})
    return out


def fold_homogeneity(folds: list[dict]) -> dict:
    correct = np.array([(f["pred"] == f["labels"]).sum() for f in folds])
    total = np.array([len(f["labels"]) for f in folds])
    chi2, p, dof, _ = stats.chi2_contingency(np.stack([correct, total - correct]))
    return {"test": "chi-square homogeneity of fold accuracies", "chi2": float(chi2), "dof": int(dof), "p_value": float(p)}


def paired_tests(a: list[dict], b: list[dict]) -> dict:
    """a and b must come from the same folds (same seed and data)."""
    if [f["index"].tolist() for f in a] != [f["index"].tolist() for f in b]:
        raise ValueError("the two runs were not made on the same folds")
    acc_a = np.array([(f["pred"] == f["labels"]).mean() for f in a])
    acc_b = np.array([(f["pred"] == f["labels"]).mean() for f in b])
    right_a = np.concatenate([f["pred"] == f["labels"] for f in a])
    right_b = np.concatenate([f["pred"] == f["labels"] for f in b])
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    result = {"mean_accuracy_difference": float((acc_a - acc_b).mean()), "mcnemar_a_only": only_a, "mcnemar_b_only": only_b,
              "mcnemar_p_value": float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0}
    if len(a) > 1 and np.any(acc_a != acc_b):
        result["paired_t_p_value"] = float(stats.ttest_rel(acc_a, acc_b).pvalue)
        result["wilcoxon_p_value"] = float(stats.wilcoxon(acc_a, acc_b).pvalue)
    return result


def pooled_threshold_check(folds: list[dict]) -> dict:
    """Each fold (from fold_predictions) decided at its own validation-chosen mpox threshold,
    and at the median of the other folds' (the pooling `mpox export --threshold-from-cv`
    ships): mean accuracy, mpox sensitivity and specificity over folds. No test image
    chooses a threshold."""
    out = {}
    for rule in ("own", "median of the other folds"):
        scores = []
        for k, f in enumerate(folds):
            threshold = f["threshold"] if rule == "own" else float(np.median([o["threshold"] for j, o in enumerate(folds) if j != k]))
            pred, labels, mpox = decide(f["probs"], f["classes"], threshold), f["labels"], f["classes"].index("Monkeypox")
            scores.append([(pred == labels).mean(), (pred[labels == mpox] == mpox).mean(), (pred[labels != mpox] != mpox).mean()])
        out[rule] = dict(zip(("accuracy", "mpox_sensitivity", "mpox_specificity"), np.mean(scores, 0).tolist()))
    return out
