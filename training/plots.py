"""PNG plots of a run: loss/accuracy curves, confusion matrix, ROC and PR curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve


def save(fig, path: Path, legends=()) -> None:
    for ax in legends:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_curves(history: list[dict], path: Path) -> None:
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], label="train")
    a.plot(ep, [h["val_loss"] for h in history], label="validation")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.plot(ep, [h["train_acc"] for h in history], label="train")
    b.plot(ep, [h["val_acc"] for h in history], label="validation")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    save(fig, path, legends=(a, b))


def confusion(cm: np.ndarray, classes: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="confusion matrix")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    save(fig, path)


def roc_pr(labels: np.ndarray, probs: np.ndarray, classes: list[str], path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for i, name in enumerate(classes):
        y = labels == i
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, probs[:, i])
        prec, rec, _ = precision_recall_curve(y, probs[:, i])
        a.plot(fpr, tpr, label=name)
        b.plot(rec, prec, label=name)
    a.plot([0, 1], [0, 1], "k:", lw=1)
    a.set(xlabel="false positive rate", ylabel="true positive rate (sensitivity)", title="ROC (one vs rest)")
    b.set(xlabel="recall", ylabel="precision", title="precision-recall (one vs rest)")
    save(fig, path, legends=(a, b))


def cv_plots(run: Path, classes: list[str]) -> None:
    """Out-of-fold predictions of every finished fold pooled: confusion, ROC/PR, and each
    fold's curves."""
    folds = sorted(run.glob("fold*/test_predictions.npz"))
    if not folds:
        return
    preds = [np.load(f) for f in folds]
    labels = np.concatenate([p["labels"] for p in preds])
    probs = np.concatenate([p["probs"] for p in preds])
    cm = sum(np.array(json.loads((f.parent / "metrics.json").read_text())["confusion_matrix"]) for f in folds)
    confusion(cm, classes, run / "confusion.png")
    roc_pr(labels, probs, classes, run / "roc_pr.png")
    for f in folds:
        training_curves(json.loads((f.parent / "history.json").read_text()), f.parent / "curves.png")
