"""Fast-MpoxNet as we reconstruct it (see ../shared/docs/models.md; every choice here is ours).

- Body: ShuffleNetV2 x0.5 up to stage 4 (stem 24ch + max-pool; stages of 48/96/192 channels
  at strides 8/16/32), the only common ImageNet-class backbone small enough for 0.27M in all.
- ABLGFM (attention-based local and global feature fusion): stage 3 (local, 96@14x14) is
  aligned to stage 4's 7x7 grid by a stride-2 depthwise conv, concatenated with stage 4
  (global, 192@7x7), fused by a point-wise conv, re-weighted by channel attention (pooled
  mean/max -> MLP) and spatial attention (per-pixel mean/max -> 7x7 conv), and added back to
  stage 4 as a residual.
- Cls Head: PWConv -> BN -> ReLU -> global average pool -> dropout -> Linear(classes).
- Transfer without ImageNet ShuffleNet weights: an optional first stage teaches the network to
  reproduce a pretrained EfficientNet-Lite0's ImageNet predictions from its pooled head
  features on augmented training images (see training/train.py, pre_distill).
- Auxiliary heads on stages 2 and 3 (training only): PWConv -> BN -> ReLU -> GAP -> Linear.
  In eval mode forward() returns the logits alone, so the exported graph has one output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: stride 1 splits channels and transforms one half; stride 2
    transforms both branches and doubles the channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride == 2:
            self.left = nn.Sequential(conv_bn(cin, cin, 3, 2, groups=cin, act=False), conv_bn(cin, half))
            right_in = cin
        else:
            self.left = None
            right_in = half
        self.right = nn.Sequential(
            conv_bn(right_in, half), conv_bn(half, half, 3, stride, groups=half, act=False), conv_bn(half, half)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return channel_shuffle(out)


def stage(cin: int, cout: int, repeats: int) -> nn.Sequential:
    return nn.Sequential(ShuffleUnit(cin, cout, 2), *[ShuffleUnit(cout, cout, 1) for _ in range(repeats - 1)])


class ABLGFM(nn.Module):
    """Fuses a local (higher-resolution) and a global feature map with channel and spatial
    attention; the result is added to the global map."""

    def __init__(self, local_ch: int, global_ch: int, reduction: int = 8) -> None:
        super().__init__()
        self.align = conv_bn(local_ch, local_ch, 3, 2, groups=local_ch, act=False)
        self.fuse = conv_bn(local_ch + global_ch, global_ch)
        self.channel_mlp = nn.Sequential(
            nn.Conv2d(global_ch, global_ch // reduction, 1), nn.ReLU(inplace=True), nn.Conv2d(global_ch // reduction, global_ch, 1)
        )
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        f = self.fuse(torch.cat([self.align(local), glob], 1))
        ca = torch.sigmoid(self.channel_mlp(F.adaptive_avg_pool2d(f, 1)) + self.channel_mlp(F.adaptive_max_pool2d(f, 1)))
        f = f * ca
        sa = torch.sigmoid(self.spatial(torch.cat([f.mean(1, keepdim=True), f.amax(1, keepdim=True)], 1)))
        return glob + f * sa


class PWHead(nn.Module):
    """PWConv -> BN -> ReLU -> GAP -> dropout -> Linear."""

    def __init__(self, cin: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pw = conv_bn(cin, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(F.adaptive_avg_pool2d(self.pw(x), 1).flatten(1)))


class FastMpoxNet(nn.Module):
    def __init__(self, num_classes: int = 4, head_channels: int = 288, aux_channels: int = 64,
                 dropout: float = 0.2, ablgfm: bool = True, aux_heads: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1))
        self.stage2 = stage(24, 48, 4)
        self.stage3 = stage(48, 96, 8)
        self.stage4 = stage(96, 192, 4)
        self.ablgfm = ABLGFM(96, 192) if ablgfm else None
        self.head = PWHead(192, head_channels, num_classes, dropout)
        self.aux2 = PWHead(48, aux_channels, num_classes, 0.0) if aux_heads else None
        self.aux3 = PWHead(96, aux_channels, num_classes, 0.0) if aux_heads else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s2 = self.stage2(self.stem(x))
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        if self.ablgfm is not None:
            s4 = self.ablgfm(s3, s4)
        return s2, s3, s4

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of the Cls Head (before its classifier): what the ImageNet
        pre-distillation stage teaches (training/train.py, pre_distill)."""
        return F.adaptive_avg_pool2d(self.head.pw(self.stages(x)[2]), 1).flatten(1)

    def forward(self, x: torch.Tensor):
        s2, s3, s4 = self.stages(x)
        logits = self.head(s4)
        if self.training and self.aux2 is not None:
            return logits, self.aux2(s2), self.aux3(s3)
        return logits

    def deploy_parameters(self) -> int:
        """Parameters of the exported graph (auxiliary heads excluded)."""
        aux = [m for m in (self.aux2, self.aux3) if m is not None]
        return sum(p.numel() for p in self.parameters()) - sum(p.numel() for m in aux for p in m.parameters())
