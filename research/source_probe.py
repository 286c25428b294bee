"""Which collection a photo comes from, against which condition it shows: a linear probe on
ImageNet features (EfficientNet-Lite0, not fine-tuned) for each question, scored by grouped
cross-validation. An "Other" class learnt from DermNet's photos while the named classes come
from MSID can be told apart by where a photo comes from instead of what it shows; when the
collection is as easy to tell as the condition, or easier, the model has that shortcut, and
only photos of the named classes from the other conditions' collection (or the reverse)
would take it away.

    python -m research.source_probe --data ../shared/data/msid [--dermnet ~/.cache/mpox/dermnet]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edge.contract import MPOX_LABEL
from training import dermnet
from training.data import group_near_duplicates, load_image_folder
from training.metrics import balanced_accuracy
from training.models.efficientnet import EfficientNetLite
from training.train import to_input

FOLDS = 5


def probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
    """Balanced accuracy and ROC AUC of a logistic regression telling labels 0 and 1 apart,
    each photo scored by the fold that did not train on its group (near-duplicates share one)."""
    scores = np.zeros(len(labels))
    for train, test in StratifiedGroupKFold(FOLDS, shuffle=True, random_state=seed).split(features, labels, groups):
        fit = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced"))
        fit.fit(features[train], labels[train])
        scores[test] = fit.predict_proba(features[test])[:, 1]
    return {"photos": [int((labels == 0).sum()), int((labels == 1).sum())],
            "balanced_accuracy": balanced_accuracy(labels, (scores > 0.5).astype(int), 2),
            "roc_auc": float(roc_auc_score(labels, scores))}


@torch.no_grad()
def imagenet_features(images: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, 1280) pooled features of ImageNet's EfficientNet-Lite0 for uint8 RGB 224 x 224 photos."""
    net = EfficientNetLite("efficientnet-lite0", pretrained=True).eval()
    return np.concatenate([net.features(to_input(images[i:i + batch])).numpy() for i in range(0, len(images), batch)])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="MSID in ImageFolder layout")
    ap.add_argument("--dermnet", type=Path, default=dermnet.DEFAULT_CACHE, help="the DermNet cache (mpox dermnet build)")
    ap.add_argument("--per-condition", type=int, default=5, help="DermNet training photos taken per condition")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = ap.parse_args(argv)
    msid, skin = load_image_folder(args.data), dermnet.load(args.dermnet)
    rng = np.random.default_rng(0)
    picked = []
    for condition in sorted(set(skin.conditions)):
        idx = [i for i in skin.where("train") if skin.conditions[i] == condition]
        picked += rng.permutation(idx)[:args.per_condition].tolist()
    measles = [i for i, c in enumerate(skin.conditions) if c == dermnet.MEASLES_LABEL]  # every split: only a few
    derm_idx = sorted(set(picked) | set(measles))
    derm_images = dermnet.center_crops([skin.bands[i] for i in derm_idx])
    images = np.concatenate([msid.images, derm_images])
    features = imagenet_features(images)
    n = len(msid)
    msid_groups = group_near_duplicates(msid.images)
    groups = np.concatenate([msid_groups, msid_groups.max() + 1 + np.arange(len(derm_idx))])
    source = np.r_[np.zeros(n, int), np.ones(len(derm_idx), int)]
    classes = msid.classes
    mpox, chickenpox, measles_k = (classes.index(c) for c in (MPOX_LABEL, "Chickenpox", dermnet.MEASLES_LABEL))
    derm_measles = np.array([skin.conditions[i] == dermnet.MEASLES_LABEL for i in derm_idx])

    def pair(a: np.ndarray, b: np.ndarray) -> dict:
        keep = np.r_[a, b]
        return probe(features[keep], np.r_[np.zeros(len(a), int), np.ones(len(b), int)], groups[keep])

    msid_of = {k: np.flatnonzero(msid.labels == k) for k in range(len(classes))}
    figures = {
        "collection: MSID or DermNet (every condition)": probe(features, source, groups),
        "collection, one condition: MSID's measles or DermNet's": pair(msid_of[measles_k], n + np.flatnonzero(derm_measles)),
        "condition, one collection: MSID's mpox or chickenpox": pair(msid_of[mpox], msid_of[chickenpox]),
        "condition, one collection: MSID's mpox or measles": pair(msid_of[mpox], msid_of[measles_k]),
    }
    for name, f in figures.items():
        print(f"{name}: balanced accuracy {f['balanced_accuracy']:.3f}, ROC AUC {f['roc_auc']:.3f} ({f['photos'][0]} / {f['photos'][1]} photos)")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
