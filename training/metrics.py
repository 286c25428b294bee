"""Screening metrics from labels and class probabilities, the mpox decision threshold and the
"Other" class's offset."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from edge.contract import MPOX_LABEL, decide


def choose_threshold(labels: np.ndarray, probs: np.ndarray, mpox_index: int, target_sensitivity: float = 0.95) -> float:
    """The highest mpox threshold (at most 0.5) whose sensitivity on these (validation)
    labels reaches the target; the highest threshold keeps specificity as high as it can be."""
    pos = probs[labels == mpox_index, mpox_index]
    if len(pos) == 0:
        return 0.5
    k = int(np.floor((1 - target_sensitivity) * len(pos)))  # positives we may miss
    t = float(np.sort(pos)[k])
    return float(min(0.5, max(1e-3, t)))


OTHER_BIASES = np.arange(-4.0, 2.01, 0.25)  # logit offsets tried for a model's "Other" class


def shift_class(probs: np.ndarray, index: int, bias: float) -> np.ndarray:
    """probs as the model gives them once class `index`'s logit is moved by `bias`."""
    logits = np.log(np.clip(probs, 1e-12, 1.0))
    logits[:, index] += bias
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def balanced_accuracy(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present: each class counts alike, however many photos it has."""
    present = [c for c in range(n_classes) if (labels == c).any()]
    return float(np.mean([(pred[labels == c] == c).mean() for c in present])) if present else 0.0


def choose_class_bias(labels: np.ndarray, probs: np.ndarray, classes: list[str], index: int) -> float:
    """The logit offset for class `index` (a model's "Other") with the best balanced accuracy
    on these (validation, kiosk-view) probabilities, each offset with the mpox threshold it
    would get: a broad class learnt from another photo source (DermNet) can take photos of
    the named rashes by their look, not their skin, and only validation can say how far to
    trust it. Ties go to the offset nearest 0 (the model as trained)."""
    scores = {float(b): balanced_accuracy(labels, decide_with_offset(labels, probs, classes, index, float(b))[1], len(classes))
              for b in OTHER_BIASES}
    best = max(scores.values())
    return min((b for b, v in scores.items() if v >= best - 1e-9), key=abs)


def decide_with_offset(labels: np.ndarray, probs: np.ndarray, classes: list[str], index: int,
                       offset: float) -> tuple[float | None, np.ndarray]:
    """Class `index`'s logit moved by `offset`: the mpox threshold these labelled photos then
    give (None without an mpox class), and the decisions it makes."""
    shifted = shift_class(probs, index, offset)
    threshold = choose_threshold(labels, shifted, classes.index(MPOX_LABEL)) if MPOX_LABEL in classes else None
    return threshold, decide(shifted, classes, threshold) if threshold else shifted.argmax(1)


def screening_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str], threshold: float | None = None) -> dict:
    """Accuracy, per-class precision/recall/specificity/F1, macro ROC AUC and PR AUC, and
    the confusion matrix. With a threshold, predictions follow decide(); else argmax."""
    n = len(classes)
    pred = decide(probs, classes, threshold) if threshold is not None else probs.argmax(1)
    cm = confusion_matrix(labels, pred, labels=list(range(n)))
    out = {"n": int(len(labels)), "accuracy": float((pred == labels).mean()), "argmax_accuracy": float((probs.argmax(1) == labels).mean())}
    per_class = {}
    for i, name in enumerate(classes):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = cm.sum() - tp - fn - fp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
            "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        }
    out["per_class"] = per_class
    onehot = np.eye(n)[labels]
    present = onehot.sum(0) > 0
    try:
        out["roc_auc_macro"] = float(roc_auc_score(onehot[:, present], probs[:, present], average="macro"))
        out["pr_auc_macro"] = float(average_precision_score(onehot[:, present], probs[:, present], average="macro"))
    except ValueError:  # a class missing from a tiny split
        out["roc_auc_macro"] = out["pr_auc_macro"] = float("nan")
    out["confusion_matrix"] = cm.tolist()
    if threshold is not None:
        out["mpox_threshold"] = float(threshold)
    return out


def called_shares(probs: np.ndarray, classes: list[str], threshold: float) -> dict:
    """How photos that belong to none of the classes a model should name are called: the
    share of each class decide() gives them (e.g. photos of other skin conditions, of which
    "Monkeypox" and "Normal" are the harmful answers)."""
    pred = decide(probs, classes, threshold)
    return {"n": int(len(pred)), **{f"called_{c}": float((pred == i).mean()) if len(pred) else 0.0 for i, c in enumerate(classes)}}


def flatten(metrics: dict) -> dict[str, float]:
    """Scalar figures of screening_metrics() as flat names, for tables and mean +- sd."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, float)}
    for cls, figures in metrics.get("per_class", {}).items():
        for k, v in figures.items():
            flat[f"{cls}.{k}"] = v
    for part, figures in metrics.items():  # e.g. dermnet_other.called_Monkeypox
        if isinstance(figures, dict) and part != "per_class":
            flat.update({f"{part}.{k}": v for k, v in figures.items() if isinstance(v, float)})
    return flat


def summarise(folds: list[dict]) -> dict[str, dict[str, float]]:
    """mean and sd (ddof=1) of every scalar figure over folds."""
    flats = [flatten(m) for m in folds]
    keys = [k for k in flats[0] if all(k in f for f in flats)]
    return {k: {"mean": float(np.mean([f[k] for f in flats])), "sd": float(np.std([f[k] for f in flats], ddof=1)) if len(flats) > 1 else 0.0} for k in keys}
