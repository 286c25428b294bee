"""Parameters and FLOPs of a model, counted by torch's own FlopCounterMode (FLOPs = 2 x
multiply-accumulates, convolutions and matrix products)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, size: int = 224) -> int:
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    return int(counter.get_total_flops())


def complexity(model: nn.Module, size: int = 224) -> dict[str, float]:
    params = model.deploy_parameters() if hasattr(model, "deploy_parameters") else sum(p.numel() for p in model.parameters())
    return {"parameters": int(params), "gflops": count_flops(model, size) / 1e9}
