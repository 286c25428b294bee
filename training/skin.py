"""Skin pretraining: EfficientNet-Lite0 learns DermNet's conditions before it ever sees MSID.

The 607 MSID photos teach four classes; the rest of dermatology (what a clinic door sees most)
they cannot teach. Here the ImageNet-pretrained Lite0 is trained to tell DermNet's conditions
apart (each condition with at least `min_images` training photos is a class), on random square
crops of the logo-free bands (training/dermnet.py) at 224 px, where lesions still show. Its
stem and first three blocks (stride 4: edges and colours) stay frozen, as in Fast-MpoxNet,
whose body is this network's first eight blocks: one run gives the teacher its skin features
and Fast-MpoxNet's body the same (training/models/fast_mpoxnet.py, load_lite0_body).

Resumable (training/runner.py): `out/state.pt` after every epoch, `out/log.txt` a line per
epoch and every LOG_EVERY steps; `out/skin-lite0.pt` the finished backbone and its facts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training import dermnet
from training.models.efficientnet import SKIN_FORMAT, EfficientNetLite
from training.runner import RunState, Schedule, run_epoch
from training.train import predict_logits, to_input

log = logging.getLogger(__name__)

LOG_EVERY = 50


@dataclass(frozen=True)
class SkinConfig:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    warmup_epochs: int = 1
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    min_images: int = 8  # training photos a condition needs to be a class of its own
    crop_scale: tuple[float, float] = (0.7, 1.0)  # side of a random square crop, as a share of the band's height
    seed: int = 0


def condition_classes(ds: dermnet.DermNetSet, min_images: int) -> tuple[list[str], dict[str, int]]:
    """Conditions with at least min_images training photos, and their class index."""
    counts: dict[str, int] = {}
    for i in ds.where("train"):
        counts[ds.conditions[i]] = counts.get(ds.conditions[i], 0) + 1
    names = sorted(c for c, n in counts.items() if n >= min_images)
    return names, {c: i for i, c in enumerate(names)}


def random_crops(bands: list[np.ndarray], rng: np.random.Generator, scale: tuple[float, float]) -> np.ndarray:
    """A random square crop of each band, flipped at random and with light and contrast
    jittered, at dermnet.CROP_SIZE: (N, dermnet.CROP_SIZE, dermnet.CROP_SIZE, 3) uint8."""
    out = np.empty((len(bands), dermnet.CROP_SIZE, dermnet.CROP_SIZE, 3), np.uint8)
    for k, band in enumerate(bands):
        h, w = band.shape[:2]
        side = int(min(h, w) * rng.uniform(*scale))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = cv2.resize(band[y:y + side, x:x + side], (dermnet.CROP_SIZE, dermnet.CROP_SIZE), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        out[k] = np.clip(crop.astype(np.float32) * gain + offset, 0, 255)
    return out


def crop_batches(bands: list[np.ndarray], labels: np.ndarray, train_idx: np.ndarray, cfg: SkinConfig,
                 rng: np.random.Generator, steps: int, on_log_step) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An epoch's batches: every training photo once, as a random crop (random_crops)."""
    order = rng.permutation(train_idx)
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        if step % LOG_EVERY == 0:
            on_log_step(step)
        yield to_input(random_crops([bands[i] for i in idx], rng, cfg.crop_scale)), torch.from_numpy(labels[idx])


class FrozenStem(nn.Module):
    """Lite0 with its stem and first three blocks frozen, their BatchNorm statistics included."""

    def __init__(self, net: EfficientNetLite) -> None:
        super().__init__()
        self.net = net
        b = net.backbone
        self.frozen = [b._conv_stem, b._bn0, *list(b._blocks)[:3]]
        for part in self.frozen:
            part.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenStem:
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pretrain(cache: Path, out: Path, cfg: SkinConfig, reserved: Path = dermnet.DEFAULT_RESERVED) -> dict:
    """Train (or resume) the skin pretraining run in `out`; returns the finished backbone's facts."""
    out.mkdir(parents=True, exist_ok=True)
    logfile = (out / "log.txt").open("a", buffering=1)

    def note(text: str) -> None:
        logfile.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    ds = dermnet.load(cache, reserved)
    names, index = condition_classes(ds, cfg.min_images)
    train_idx = np.array([i for i in ds.where("train") if ds.conditions[i] in index])
    val_idx = np.array([i for i in ds.where("holdout-image") if ds.conditions[i] in index])
    labels = np.array([index.get(c, -1) for c in ds.conditions], np.int64)
    val_images = dermnet.center_crops([ds.bands[i] for i in val_idx])
    torch.manual_seed(cfg.seed)
    net = FrozenStem(EfficientNetLite("efficientnet-lite0", len(names))).to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = RunState(out / "state.pt")
    epochs = state.restore(net, opt)
    schedule = Schedule(cfg.lr, cfg.epochs, cfg.warmup_epochs)
    steps = len(train_idx) // cfg.batch_size
    note(f"{len(names)} conditions, {len(train_idx)} training photos, {len(val_idx)} held-out photos; "
         f"resuming after epoch {len(epochs)}" if epochs else f"start: {len(names)} conditions, {len(train_idx)} training photos, "
         f"{len(val_idx)} held-out photos of the same conditions; {asdict(cfg)}")

    def loss_fn(output: torch.Tensor, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        return F.cross_entropy(output, batch[1], label_smoothing=cfg.label_smoothing), output

    for epoch in range(len(epochs), cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])  # an epoch's batches do not depend on a resume
        batches = crop_batches(ds.bands, labels, train_idx, cfg, rng, steps,
                               lambda step, epoch=epoch: note(f"epoch {epoch + 1} step {step}/{steps}"))
        result = run_epoch(net, opt, schedule, epoch, batches, steps, loss_fn)
        logits = predict_logits(net, val_images)
        top1 = float((logits.argmax(1) == labels[val_idx]).mean())
        top5 = float((np.argsort(-logits, 1)[:, :5] == labels[val_idx, None]).any(1).mean())
        epochs.append({**asdict(result), "val_top1": top1, "val_top5": top5})
        state.save(net, opt, epochs)
        note(f"epoch {epoch + 1}/{cfg.epochs}: loss {result.loss:.3f}, train acc {result.accuracy:.3f}, "
             f"held-out top-1 {top1:.3f} top-5 {top5:.3f}, {result.seconds:.0f} s")
    facts = {"format": SKIN_FORMAT, "conditions": names, "epochs": epochs, "config": asdict(cfg),
             "seconds": sum(e["seconds"] for e in epochs), "cache_manifest_sha256": dermnet.sha256_file(cache / "manifest.json"),
             "licence": dermnet.LICENCE, "threads": torch.get_num_threads()}
    backbone = {k: v for k, v in net.net.backbone.state_dict().items() if not k.startswith("_fc.")}
    torch.save({**facts, "backbone": backbone}, out / "skin-lite0.pt")
    note(f"done: {facts['seconds'] / 60:.1f} min of training, {out / 'skin-lite0.pt'}")
    logfile.close()
    return facts
