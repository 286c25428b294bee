"""Function matching: distil a small student from a strong teacher, patiently and consistently
(Beyer et al., "Knowledge distillation: A good teacher is patient and consistent", CVPR 2022).

Made for Fast-MpoxNet's ShuffleNet body, which has no ImageNet weights: 500 labelled photos
are too few to train it from scratch (Fast-MpoxNet 1.1.0 came from here; 2.0.0's pretrained
body trains with `mpox train` instead, see docs/RESULTS.md). Here every step makes fresh
pictures (kiosk augmentation, then mixup between two images of the batch, each sample its
own mixing weight) and the student learns the teacher's predictions on exactly those
pictures: the teacher can label any picture, so the training set is in effect unlimited,
and no label noise enters the loss.
Labels are used only on the validation part, for early stopping and the mpox threshold.

The teacher is an exported IR (e.g. models/efficientnet-lite0.xml), run with OpenVINO: no
teacher checkpoint is needed, and the student learns the very model that ships.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from torch.nn import functional as F
from tqdm import tqdm

from edge.engine import model_info, read_model
from training.augment import kiosk_augmentation
from training.errors import TrainingError
from training.models.efficientnet import NORMALISATION
from training.runner import Schedule, run_epoch
from training.train import BestEpoch, TrainConfig, build, normalise, validate

log = logging.getLogger(__name__)


@dataclass
class MatchingConfig:
    epochs: int = 150
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.02
    warmup_epochs: int = 3
    mixup_alpha: float = 1.0  # per-sample mixing weight ~ Beta(alpha, alpha); 0: no mixup
    temperature: float = 1.0
    aux_weights: tuple[float, float] = (0.4, 0.2)  # Fast-MpoxNet's auxiliary heads match the teacher too
    patience: int = 40  # epochs without a better validation loss before stopping
    seed: int = 0


class IRTeacher:
    """An exported IR as a batch teacher: normalised (N,3,S,S) tensor -> logits. The IR's
    input is 1x3xSxS (ShuffleNet's channel shuffle fixes the batch), so the images of a
    batch run as parallel requests."""

    def __init__(self, xml: str | Path) -> None:
        core = ov.Core()
        model = read_model(core, xml)
        self.info = model_info(model, str(xml))
        self.queue = ov.AsyncInferQueue(core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"}))

    def check(self, classes: list[str]) -> None:
        if tuple(classes) != self.info.labels:
            raise TrainingError(f"the teacher {self.info.name} predicts {', '.join(self.info.labels)}, "
                                f"the data has classes {', '.join(classes)}")
        if (tuple(np.round(self.info.mean, 4)), tuple(np.round(self.info.std, 4))) != \
                (tuple(np.round(NORMALISATION["mean"], 4)), tuple(np.round(NORMALISATION["std"], 4))):
            raise TrainingError(f"the teacher {self.info.name} expects other input normalisation than the student")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(x.numpy(), np.float32)
        out = np.empty((len(images), len(self.info.labels)), np.float32)

        def done(request: ov.InferRequest, i: int) -> None:
            out[i] = request.get_output_tensor(0).data[0]

        self.queue.set_callback(done)
        for i in range(len(images)):
            self.queue.start_async({0: images[i:i + 1]}, i)
        self.queue.wait_all()
        return torch.from_numpy(out)


class TorchTeacher:
    """A torch model as teacher (a CV fold's cached teacher checkpoint)."""

    def __init__(self, model: torch.nn.Module, classes: list[str]) -> None:
        self.model, self.classes = model.eval(), list(classes)

    def check(self, classes: list[str]) -> None:
        if list(classes) != self.classes:
            raise TrainingError(f"the teacher predicts {', '.join(self.classes)}, the data has {', '.join(classes)}")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).float()


def mixup(x: torch.Tensor, alpha: float, generator: torch.Generator) -> torch.Tensor:
    """Each picture blended with another of the batch, with its own weight."""
    if alpha <= 0 or len(x) < 2:
        return x
    beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
    lam = beta.sample((len(x),)).view(-1, 1, 1, 1)
    partner = torch.randperm(len(x), generator=generator)
    return lam * x + (1 - lam) * x[partner]


def match_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at `temperature`, scaled so gradients do not shrink with it."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1), log_target=True,
                    reduction="batchmean") * t * t


def matching_batches(images: np.ndarray, order: np.ndarray, steps: int, cfg: MatchingConfig, augment, generator: torch.Generator,
                     teacher: IRTeacher | TorchTeacher):
    """An epoch's batches of (fresh augmented and mixed pictures, the teacher's choice, its logits)."""
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        with torch.no_grad():
            x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div_(255)
            x = normalise(mixup(augment(x).clamp_(0, 1), cfg.mixup_alpha, generator))
            target = teacher(x)
        yield x, target.argmax(1), target


def matching_loss(cfg: MatchingConfig):
    """The student's logits, and its auxiliary heads', matched to the teacher's (match_loss)."""

    def loss_fn(output, batch: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        logits, aux = (output[0], output[1:]) if isinstance(output, tuple) else (output, ())
        loss = match_loss(logits, batch[2], cfg.temperature)
        for w, a in zip(cfg.aux_weights, aux):
            loss = loss + w * match_loss(a, batch[2], cfg.temperature)
        return loss, logits

    return loss_fn


def function_matching(student: TrainConfig, cfg: MatchingConfig, teacher: IRTeacher | TorchTeacher, images: np.ndarray,
                      val_images: np.ndarray, val_labels: np.ndarray, classes: list[str], show_progress: bool = True) -> dict:
    """Train `student` to match `teacher` on fresh augmented, mixed pictures of `images`
    (uint8 N,H,W,3). Returns what train.fit returns: the best model by validation loss, its
    validation probabilities, the mpox threshold chosen on them, and the history."""
    teacher.check(classes)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build(student, len(classes)).to(memory_format=torch.channels_last)
    augment = kiosk_augmentation(images.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = Schedule(cfg.lr, cfg.epochs, cfg.warmup_epochs)
    steps = max(1, len(images) // cfg.batch_size)
    best = BestEpoch(cfg.patience)
    history = []
    bar = tqdm(range(cfg.epochs), desc="function matching", disable=not show_progress, leave=False)
    for epoch in bar:
        batches = matching_batches(images, rng.permutation(len(images)), steps, cfg, augment, generator, teacher)
        # accuracy here is agreement with the teacher: there are no labels in training
        result = run_epoch(model, opt, schedule, epoch, batches, steps, matching_loss(cfg))
        val_logits, val_loss, val_acc = validate(model, val_images, val_labels)
        history.append({"epoch": result.epoch, "train_loss": result.loss, "train_acc": result.accuracy,
                        "val_loss": val_loss, "val_acc": val_acc})
        bar.set_postfix(match=f"{result.loss:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        log.info("epoch %d: match loss %.4f, agreement with teacher %.3f, val loss %.4f, val acc %.3f", epoch + 1,
                 result.loss, result.accuracy, val_loss, val_acc)
        if best.update(epoch + 1, val_loss, model, val_logits):
            break
    return best.result(model, history, val_labels, classes)
