"""Reading an ImageFolder into memory, grouping near-duplicates, and making honest folds.

Images are decoded once and resized with the kiosk's own preprocessing (edge.preprocess), so
training sees pixels prepared exactly as the kiosk prepares camera frames. Folds are split
*before* any augmentation and keep near-duplicate groups whole, so no near-twin of a test
image is ever trained on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from edge.images import IMAGE_SUFFIXES
from edge.preprocess import preprocess_u8
from training.errors import DataError

log = logging.getLogger(__name__)

# Near-duplicate rule, set by looking at MSID's closest pairs: perceptual hashes within 10 of
# 64 bits (re-encoded or re-scaled copies), or within 16 bits with 16x16 thumbnails whose
# pixels correlate >= 0.9 (the same photo shifted or re-cropped a little).
PHASH_SAME = 10
PHASH_NEAR = 16
THUMB_CORR_NEAR = 0.9


@dataclass
class ImageSet:
    images: np.ndarray  # (N, size, size, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    paths: list[str]  # relative to the root
    data_hash: str  # sha256 over relative paths and file bytes

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> ImageSet:
        return ImageSet(self.images[idx], self.labels[idx], self.classes, [self.paths[i] for i in idx], self.data_hash)


def load_image_folder(root: str | Path, size: int = 224) -> ImageSet:
    """Decode every readable image under root/<class>/ into memory.

    Unreadable or non-image files (a stray .DS_Store, a truncated JPEG) are skipped with one
    warning that lists them; an empty folder or one with a single class is an error."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    images, labels, paths, skipped = [], [], [], []
    digest = hashlib.sha256()
    for label, name in enumerate(classes):
        for f in sorted((root / name).rglob("*")):
            if not f.is_file():
                continue
            rel = f.relative_to(root).as_posix()
            raw = f.read_bytes() if f.suffix.lower() in IMAGE_SUFFIXES else b""
            try:
                bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
            except cv2.error:  # e.g. a header claiming more pixels than OpenCV may decode
                bgr = None
            if bgr is None:
                skipped.append(rel)
                continue
            digest.update(rel.encode() + b"\0" + hashlib.sha256(raw).digest())
            images.append(preprocess_u8(bgr, None, size))
            labels.append(label)
            paths.append(rel)
    if skipped:
        log.warning("skipped %d unreadable or non-image files: %s", len(skipped), ", ".join(skipped))
    present = sorted(set(labels))
    if not images:
        raise DataError(f"no readable images in {root} (expected {root}/<class>/<image>)")
    if len(present) < 2:
        raise DataError(f"{root} has images of only one class ({classes[present[0]]}); need at least two")
    classes = [classes[i] for i in present]
    remap = {old: new for new, old in enumerate(present)}
    return ImageSet(np.stack(images), np.array([remap[label] for label in labels], np.int64), classes, paths, digest.hexdigest())


def fingerprint(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the near-duplicate rule compares: a 64-bit perceptual hash of the image squashed
    to 224x224 (as bits) and its normalised 16x16 thumbnail."""
    square = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA) if image.shape[:2] != (224, 224) else image
    thumb = cv2.resize(square, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    return imagehash.phash(Image.fromarray(square)).hash.ravel(), (thumb - thumb.mean()) / (thumb.std() + 1e-6)


def fingerprints(images) -> tuple[np.ndarray, np.ndarray]:
    """fingerprint of each image, stacked: (hash bits (N, 64), thumbnails (N, 768))."""
    return stack_fingerprints([fingerprint(im) for im in images])


def stack_fingerprints(prints: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints made one at a time (fingerprint), stacked as fingerprints() returns them."""
    if not prints:
        return np.zeros((0, 64), bool), np.zeros((0, 768), np.float32)
    return np.stack([h for h, _ in prints]), np.stack([t for _, t in prints])


def near_duplicates(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) bool: which pairs of fingerprinted images are near-duplicates."""
    distance = (a[0][:, None, :] != b[0][None, :, :]).sum(-1)
    corr = a[1] @ b[1].T / a[1].shape[1]
    return (distance <= PHASH_SAME) | ((distance <= PHASH_NEAR) & (corr >= THUMB_CORR_NEAR))


def group_near_duplicates(images: np.ndarray) -> np.ndarray:
    """Group ids such that near-duplicate images (see the rule above) share a group,
    transitively."""
    prints = fingerprints(images)
    near = near_duplicates(prints, prints)
    parent = list(range(len(images)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(near, k=1))):
        parent[find(i)] = find(j)
    return np.unique([find(i) for i in range(len(images))], return_inverse=True)[1]


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never split a near-duplicate group: (train_idx, test_idx) pairs."""
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(labels)), labels, groups)]


def validation_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold a stratified, group-respecting part of a training set out for early stopping and
    the decision threshold: (train_idx, val_idx)."""
    n_folds = max(2, round(1 / fraction))
    try:
        return grouped_folds(labels, groups, n_folds, seed)[0]
    except ValueError:  # too few members per class for grouped folds: plain stratified
        n_classes = len(np.unique(labels))
        split = StratifiedShuffleSplit(n_splits=1, test_size=max(n_classes, round(fraction * len(labels))), random_state=seed)
        return next(split.split(np.zeros(len(labels)), labels))
