"""One training loop for every model of the project, readable top to bottom.

AdamW with warm-up and a cosine schedule, label smoothing, Fast-MpoxNet's auxiliary losses
(decayed to zero over training), distillation from a teacher's logits, early stopping on
validation loss, seeds, a progress bar, and checkpoints that carry their own facts (labels,
normalisation, threshold, data hash). Runs as is or under torchrun (DistributedDataParallel:
gloo on CPU, nccl on GPUs): each process takes its share of every batch.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from edge.contract import MPOX_LABEL as MPOX
from edge.contract import softmax
from training.errors import TrainingError
from training.metrics import choose_threshold, screening_metrics
from training.models import build_model
from training.models.efficientnet import NORMALISATION, load_skin_backbone
from training.models.fast_mpoxnet import load_lite0_body
from training.runner import Schedule, run_epoch

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    model: str = "fast-mpoxnet"
    body: str = "efficientnet-lite0"  # Fast-MpoxNet's body: the pretrained Lite0 prefix, or "shufflenet"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.02
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_balanced: bool = True  # weigh the cross-entropy by inverse class frequency
    aux_weights: tuple[float, float] = (0.4, 0.2)
    distill_weight: float = 0.7  # share of the loss given to the teacher (when there is one)
    temperature: float = 4.0
    patience: int = 60  # epochs without a better validation loss before stopping
    seed: int = 0
    ablgfm: bool = True
    aux_heads: bool = True
    pretrained: bool = True
    pre_distill_epochs: int = 0  # ImageNet pre-distillation epochs before training (ShuffleNet body, with a teacher; 20 used)
    skin: str = ""  # a skin-pretrained Lite0 backbone (training/skin.py) for the teacher or Fast-MpoxNet's Lite0 body
    model_kwargs: dict = field(default_factory=dict)


TEACHER_CONFIG = TrainConfig(model="efficientnet-lite0", epochs=10, lr=6e-4, weight_decay=0.01, patience=4, warmup_epochs=1,
                             pre_distill_epochs=0, class_balanced=False)


def build(cfg: TrainConfig, num_classes: int) -> nn.Module:
    kwargs = dict(cfg.model_kwargs)
    if cfg.model == "fast-mpoxnet":
        kwargs.update(ablgfm=cfg.ablgfm, aux_heads=cfg.aux_heads, body=cfg.body)
    model = build_model(cfg.model, num_classes, pretrained=cfg.pretrained, **kwargs)
    if cfg.skin:
        backbone = load_skin_backbone(cfg.skin)["backbone"]
        if cfg.model == "fast-mpoxnet":
            load_lite0_body(model, backbone)
        elif cfg.model == "efficientnet-lite0":
            missing = model.backbone.load_state_dict(backbone, strict=False).missing_keys
            if any(not k.startswith("_fc.") for k in missing):
                raise TrainingError(f"{cfg.skin} lacks {missing[0]}")
        else:
            raise TrainingError(f"skin pretraining is for efficientnet-lite0 and Fast-MpoxNet's Lite0 body, not {cfg.model}")
    return model


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W,3) RGB -> normalised float (N,3,H,W), channels-last (faster on CPU)."""
    return normalise(torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255))


def normalise(x: torch.Tensor) -> torch.Tensor:
    """float (N,3,H,W) in 0..1 -> the models' input normalisation, channels-last."""
    mean = torch.tensor(NORMALISATION["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(NORMALISATION["std"]).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    return np.concatenate([model(to_input(images[i:i + batch])).float().numpy() for i in range(0, len(images), batch)])


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> None:
    """Join the process group torchrun describes in the environment (no-op otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


PRE_DISTILL_TEMPERATURE = 2.0


@torch.no_grad()
def imagenet_logits(views: np.ndarray, batch: int = 64) -> np.ndarray:
    """A pretrained (not fine-tuned) EfficientNet-Lite0's ImageNet logits for (V, N, H, W, 3)
    views, float16: the targets of pre_distill."""
    net = build_model("efficientnet-lite0", 4).to(memory_format=torch.channels_last).eval()
    flat = views.reshape(-1, *views.shape[2:])
    out = np.concatenate([net.imagenet_logits(to_input(flat[i:i + batch])).numpy() for i in range(0, len(flat), batch)])
    return out.astype(np.float16).reshape(*views.shape[:2], -1)


def pre_distill(model: nn.Module, cfg: TrainConfig, views: np.ndarray, targets: np.ndarray, show_progress: bool = True) -> list[float]:
    """Transfer learning without ImageNet weights for the student's own architecture: train
    its body and a temporary 1000-way classifier on its pooled head features to match a
    pretrained teacher's ImageNet predictions (KL at PRE_DISTILL_TEMPERATURE) on augmented views. No
    labels are used. The temporary classifier is dropped afterwards. Returns each epoch's
    mean loss."""
    rank, size = world()
    rng = np.random.default_rng(cfg.seed + 1)
    probed = Probed(model, nn.Linear(model.head.fc.in_features, targets.shape[-1]))
    params = list(probed.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_views, n = views.shape[:2]
    steps = max(1, n // cfg.batch_size)
    schedule = Schedule(cfg.lr, cfg.pre_distill_epochs, warmup_epochs=1)
    losses = []
    for epoch in tqdm(range(cfg.pre_distill_epochs), desc="pre-distill", disable=not show_progress or rank != 0, leave=False):
        order, view_of = rng.permutation(n), rng.integers(0, n_views, n)
        batches = view_batches(views, order, view_of, steps, cfg.batch_size, targets)
        result = run_epoch(probed, opt, schedule, epoch, batches, steps, imagenet_match_loss,
                           (lambda: average_gradients(params, size)) if size > 1 else None)
        losses.append(result.loss)
    return losses


class Probed(nn.Module):
    """A model's pooled head features through a temporary classifier (pre_distill's probe)."""

    def __init__(self, model: nn.Module, probe: nn.Linear) -> None:
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(self.model.embed(x))


def view_batches(views: np.ndarray, order: np.ndarray, view_of: np.ndarray, steps: int, batch_size: int,
                 targets: np.ndarray | None = None, labels: np.ndarray | None = None):
    """An epoch's batches of (images, labels or the targets' argmax, index, targets): each
    image once, as its view `view_of`, this rank's share of each batch."""
    rank, size = world()
    for step in range(steps):
        idx = order[step * batch_size:(step + 1) * batch_size][rank::size]
        x = to_input(views[view_of[idx], idx])
        if targets is None:
            yield x, torch.from_numpy(labels[idx]), idx
        else:
            t = torch.from_numpy(targets[view_of[idx], idx].astype(np.float32))
            yield x, t.argmax(1), idx, t


def imagenet_match_loss(output: torch.Tensor, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """KL between the probe's and the teacher's ImageNet predictions at PRE_DISTILL_TEMPERATURE."""
    t = batch[3] / PRE_DISTILL_TEMPERATURE
    s = output / PRE_DISTILL_TEMPERATURE
    loss = F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean") * PRE_DISTILL_TEMPERATURE ** 2
    return loss, output


def average_gradients(params: list[nn.Parameter], size: int) -> None:
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= size


def supervised_loss(cfg: TrainConfig, class_weight: torch.Tensor | None, aux_scale: float,
                    teacher_logits: np.ndarray | None, view_of: np.ndarray):
    """fit's loss for one epoch: label-smoothed cross-entropy, the teacher's share (KL at
    cfg.temperature) and the auxiliary heads' cross-entropy, decayed by aux_scale."""

    def loss_fn(output, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        y, idx = batch[1], batch[2]
        logits, aux = (output[0], output[1:]) if isinstance(output, tuple) else (output, ())
        loss = F.cross_entropy(logits, y, class_weight, label_smoothing=cfg.label_smoothing)
        if teacher_logits is not None:
            t = torch.from_numpy(teacher_logits[view_of[idx], idx]) / cfg.temperature
            kd = F.kl_div(F.log_softmax(logits / cfg.temperature, 1), F.log_softmax(t, 1), log_target=True,
                          reduction="batchmean") * cfg.temperature ** 2
            loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd
        for w, a in zip(cfg.aux_weights, aux):
            loss = loss + w * aux_scale * F.cross_entropy(a, y, class_weight, label_smoothing=cfg.label_smoothing)
        return loss, logits

    return loss_fn


def fit(cfg: TrainConfig, views: np.ndarray, labels: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray,
        classes: list[str], teacher_logits: np.ndarray | None = None, show_progress: bool = True,
        imagenet_targets: np.ndarray | None = None) -> dict:
    """Train on `views` (V, N, H, W, 3): each epoch shows every image once, as one of its
    V augmented views (V=1: the images themselves). teacher_logits (V, N, C) match views.

    Returns the best model (lowest validation loss), its validation probabilities, the
    mpox threshold chosen on them, and the history of every epoch."""
    rank, size = world()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)  # same on every rank: all draw the same batches
    model = build(cfg, len(classes)).to(memory_format=torch.channels_last)
    if imagenet_targets is not None and cfg.pre_distill_epochs > 0:
        pre_distill(model, cfg, views, imagenet_targets, show_progress)
    net = nn.parallel.DistributedDataParallel(model) if size > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_views, n = views.shape[:2]
    steps = max(1, n // cfg.batch_size)
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float32)
    class_weight = torch.from_numpy(len(labels) / (len(classes) * np.maximum(counts, 1))) if cfg.class_balanced else None
    best = BestEpoch(cfg.patience)
    history = []
    schedule = Schedule(cfg.lr, cfg.epochs, cfg.warmup_epochs)
    bar = tqdm(range(cfg.epochs), desc=cfg.model, disable=not show_progress or rank != 0, leave=False)
    for epoch in bar:
        order = rng.permutation(n)
        view_of = rng.integers(0, n_views, n)
        loss_fn = supervised_loss(cfg, class_weight, 1.0 - epoch / cfg.epochs, teacher_logits, view_of)
        result = run_epoch(net, opt, schedule, epoch, view_batches(views, order, view_of, steps, cfg.batch_size, labels=labels),
                           steps, loss_fn)
        sync_buffers(model)
        val_logits, val_loss, val_acc = validate(model, val_images, val_labels)
        history.append({"epoch": result.epoch, "train_loss": result.loss, "train_acc": result.accuracy,
                        "val_loss": val_loss, "val_acc": val_acc})
        bar.set_postfix(loss=f"{result.loss:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        if best.update(epoch + 1, val_loss, model, val_logits):
            break
    return best.result(model, history, val_labels, classes)


def validate(model: nn.Module, val_images: np.ndarray, val_labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Validation logits, cross-entropy and accuracy."""
    val_logits = predict_logits(model, val_images)
    val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_labels)))
    return val_logits, val_loss, float((val_logits.argmax(1) == val_labels).mean())


class BestEpoch:
    """Early stopping: keeps the weights of the lowest validation loss, and says when
    `patience` epochs have passed without a better one."""

    def __init__(self, patience: int) -> None:
        self.patience, self.val_loss, self.epoch = patience, float("inf"), 0
        self.state: dict | None = None
        self.val_logits: np.ndarray | None = None

    def update(self, epoch: int, val_loss: float, model: nn.Module, val_logits: np.ndarray) -> bool:
        """Record epoch `epoch` (1-based); True when training should stop."""
        if val_loss < self.val_loss:
            self.val_loss, self.epoch, self.state, self.val_logits = val_loss, epoch, copy.deepcopy(model.state_dict()), val_logits
            return False
        return epoch - self.epoch >= self.patience

    def result(self, model: nn.Module, history: list[dict], val_labels: np.ndarray, classes: list[str]) -> dict:
        """The best epoch's model, its validation probabilities, the mpox threshold chosen on
        them, and the history: what fit returns."""
        model.load_state_dict(self.state)
        model.eval()
        val_probs = softmax(self.val_logits)
        threshold = choose_threshold(val_labels, val_probs, classes.index(MPOX)) if MPOX in classes else 0.5
        return {"model": model, "best_epoch": self.epoch, "history": history, "val_probs": val_probs,
                "threshold": threshold, "val_metrics": screening_metrics(val_labels, val_probs, classes, threshold)}


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's BatchNorm statistics, so validation (and early stopping)
    agrees across processes."""
    if world()[1] > 1:
        for b in model.buffers():
            dist.broadcast(b, 0)


def save_checkpoint(path: Path, cfg: TrainConfig, result: dict, classes: list[str], data_hash: str, extra: dict | None = None) -> None:
    model = result["model"]
    params = model.deploy_parameters() if hasattr(model, "deploy_parameters") else sum(p.numel() for p in model.parameters())
    torch.save({
        "format": "mpox-checkpoint/1", "config": asdict(cfg), "state_dict": model.state_dict(), "classes": classes,
        "mean": NORMALISATION["mean"], "std": NORMALISATION["std"], "input_size": 224, "threshold": result["threshold"],
        "data_hash": data_hash, "best_epoch": result["best_epoch"], "val_metrics": result["val_metrics"],
        "parameters": int(params), **{k: result[k] for k in ("photo_threshold", "other_bias") if k in result},
        **(extra or {}),
    }, path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    """A checkpoint written by save_checkpoint -> (model in eval mode, its facts)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("format") != "mpox-checkpoint/1":
            raise ValueError("not an mpox checkpoint")
        # checkpoints from before Fast-MpoxNet had a choice of body were ShuffleNet
        cfg = TrainConfig(**{"body": "shufflenet", **ckpt["config"], "pretrained": False, "skin": ""})
        model = build(cfg, len(ckpt["classes"]))
        model.load_state_dict(ckpt["state_dict"])
    except TrainingError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated file, wrong format, mismatched weights: one clear line
        raise TrainingError(f"cannot read checkpoint {path}: {e}") from None
    return model.eval(), ckpt
