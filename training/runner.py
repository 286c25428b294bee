"""The one place where a training epoch runs, and the state that makes a long run resumable.

Every recipe (skin pretraining, fine-tuning, distillation) hands `run_epoch` its batches and
a loss; the learning rate follows one `Schedule` (warm-up, then cosine), set per step here and
nowhere else. `RunState` saves the model, the optimiser and the epoch after every epoch,
written whole or not at all, so a run killed at any moment resumes at its last finished epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class Schedule:
    """Peak learning rate, reached after `warmup_epochs`, then cosine to zero at `epochs`."""

    lr: float
    epochs: int
    warmup_epochs: int = 1

    def factor(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        progress = (epoch - self.warmup_epochs) / max(1, self.epochs - self.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    loss: float  # mean training loss per example
    accuracy: float  # of the main output on the training batches
    seconds: float


# A loss gets the model's output and the batch (x, y, *extra) and returns (loss, logits).
Loss = Callable[[object, tuple], tuple[torch.Tensor, torch.Tensor]]


def run_epoch(net: nn.Module, opt: torch.optim.Optimizer, schedule: Schedule, epoch: int, batches: Iterable[tuple],
              steps: int, loss_fn: Loss, after_step: Callable[[], None] | None = None) -> EpochResult:
    """Train `net` for one epoch (0-based `epoch`) of `steps` batches."""
    net.train()
    start = time.perf_counter()
    total, correct, loss_sum = 0, 0, 0.0
    for step, batch in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = schedule.lr * group.get("lr_scale", 1.0) * schedule.factor(epoch + step / steps)
        loss, logits = loss_fn(net(batch[0]), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_step is not None:
            after_step()
        opt.step()
        n = len(batch[1])
        total += n
        correct += int((logits.argmax(1) == batch[1]).sum())
        loss_sum += float(loss.detach()) * n
    return EpochResult(epoch + 1, loss_sum / max(1, total), correct / max(1, total), time.perf_counter() - start)


class RunState:
    """A resumable run's checkpoint: model and optimiser state, finished epochs, their results."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def restore(self, model: nn.Module, opt: torch.optim.Optimizer) -> list[dict]:
        """Load the last saved state into model and opt; the finished epochs' results ([] if new)."""
        if not self.path.is_file():
            return []
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        return state["epochs"]

    def save(self, model: nn.Module, opt: torch.optim.Optimizer, epochs: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epochs": epochs}, tmp)
        tmp.replace(self.path)
