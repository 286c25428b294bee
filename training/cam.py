"""Class activation maps computed inside the exported graph, so the kiosk shows where the
model looked with OpenVINO alone (no torch, no autograd at run time).

`WithCam(model)` returns (logits, cam): the logits exactly as `model(x)` computes them, and
for every class c a map over the last spatial feature map A (K channels, h x w):

    cam[c] = sum_k alpha[c, k] * A[k]      alpha[c, k] = d logit_c / d pooled_k

With a linear classifier after the global average pool (Fast-MpoxNet's PWConv Cls Head) alpha
is the classifier's weights: the CAM of Zhou et al. (2016), and each map's mean plus the
class's bias is its logit. With hidden layers (EfficientNet-Lite's MLP head) alpha is the
head's gradient, worked out layer by layer in the forward pass (a product of weight matrices
and ReLU masks): Grad-CAM (Selvaraju et al. 2017) without back-propagation.

Every class gets its map because the class the kiosk reports comes from the decision rule
(mpox at its threshold, else the likeliest other class), applied outside the graph: the
runtime picks the decided class's map (edge/engine.py). Four 14x14 maps cost nothing beside
the network.
"""

from __future__ import annotations

import torch
from torch import nn

from training.errors import TrainingError

CAM_OUTPUT = "cam"


def logits_and_gradient(layers: tuple[nn.Module, ...], pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's logits [B, C] and their gradient with respect to its input: [C, K]
    for a purely linear classifier, else [B, C, K]. Layers: Linear, ReLU, Dropout (eval)."""
    outputs, h = [], pooled
    for layer in layers:
        h = layer(h)
        outputs.append(h)
    gradient = None
    for layer, out in zip(reversed(layers), reversed(outputs)):
        if isinstance(layer, nn.Linear):
            gradient = layer.weight if gradient is None else gradient @ layer.weight
        elif isinstance(layer, nn.ReLU):
            if gradient is None:
                raise TrainingError("a classifier ending in ReLU has no class activation map here")
            gradient = gradient * (out > 0).to(out.dtype).unsqueeze(1)  # [B, 1, H]: the units that were on
        elif not isinstance(layer, (nn.Dropout, nn.Identity)):
            raise TrainingError(f"no class activation map through a {type(layer).__name__} in the classifier")
    if gradient is None:
        raise TrainingError("the classifier has no Linear layer")
    return h, gradient


def method(layers: tuple[nn.Module, ...]) -> str:
    return "CAM" if all(isinstance(m, (nn.Linear, nn.Dropout, nn.Identity)) for m in layers) else "Grad-CAM"


class WithCam(nn.Module):
    """model -> (logits, cam [B, n_classes, h, w]) for export. The model provides
    feature_map(x), pool(fmap) and classifier_layers(), with forward == classifier(pool(fmap))."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for part in ("feature_map", "pool", "classifier_layers"):
            if not hasattr(model, part):
                raise TrainingError(f"{type(model).__name__} has no {part}(): cannot export a class activation map")
        self.model = model

    @property
    def method(self) -> str:
        return method(self.model.classifier_layers())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.model.feature_map(x)
        logits, gradient = logits_and_gradient(self.model.classifier_layers(), self.model.pool(fmap))
        cam = torch.matmul(gradient, fmap.flatten(2))  # [B, C, h*w]
        return logits, cam.unflatten(2, fmap.shape[2:])
