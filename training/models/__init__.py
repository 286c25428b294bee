"""Model constructors by name: what `--model` accepts."""

from __future__ import annotations

from torch import nn

from training.errors import TrainingError


def build_model(name: str, num_classes: int = 4, pretrained: bool = True, **kwargs) -> nn.Module:
    if name == "fast-mpoxnet":
        from training.models.fast_mpoxnet import FastMpoxNet

        return FastMpoxNet(num_classes, pretrained=pretrained, **kwargs)
    if name.startswith("efficientnet-lite"):
        from training.models.efficientnet import EfficientNetLite

        return EfficientNetLite(name, num_classes, pretrained=pretrained)
    raise TrainingError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")


MODEL_NAMES = ("fast-mpoxnet", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
