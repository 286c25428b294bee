"""Training-only augmentation, suited to skin photos from a kiosk camera. First the kiosk's
own view (edge.synthetic.composite): the photo held on skin or in front of a wall, filling
60-100% of the framed crop, off centre and turned, as the kiosk's framing hands it to the
model. Then kornia: framing (random resized crop), orientation (flips, rotation), light and
colour (jitter), focus and motion (blur) and sensor/compression noise. Applied after the
split, to training images only."""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from edge.synthetic import composite

COMPOSITE_P = 0.6  # share of views that show the photo in the kiosk's view; the rest fill it, as photos do


def kiosk_augmentation(size: int = 224) -> nn.Module:
    return nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.55, 1.0), ratio=(0.8, 1.25)),
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomRotation(25.0, p=0.7),
        K.ColorJitter(0.3, 0.3, 0.25, 0.03, p=0.8),
        K.RandomGaussianBlur((5, 5), (0.1, 1.8), p=0.25),
        K.RandomMotionBlur(7, 35.0, 0.5, p=0.2),
        K.RandomJPEG(jpeg_quality=(40.0, 95.0), p=0.3),
        K.RandomGaussianNoise(std=0.03, p=0.3),
    )


@torch.no_grad()
def augmented_views(images: np.ndarray, views: int, seed: int, batch: int = 64) -> np.ndarray:
    """`views` augmented copies of each uint8 RGB image: (views, N, H, W, 3) uint8.

    Made once per fold and reused by every model of that fold, so the teacher's soft labels
    can be computed once per view and every ablation variant sees the same pictures."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    aug = kiosk_augmentation(images.shape[1])
    out = np.empty((views, *images.shape), np.uint8)
    for v in range(views):
        for i in range(0, len(images), batch):
            chunk = np.stack([composite(im, im.shape[0], rng) if rng.random() < COMPOSITE_P else im for im in images[i:i + batch]])
            x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float() / 255
            y = aug(x).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1)
            out[v, i:i + batch] = y.numpy()
    return out
