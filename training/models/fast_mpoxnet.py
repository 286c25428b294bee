"""Fast-MpoxNet as we reconstruct it (see ../shared/docs/models.md; every choice here is ours).

- Body, one of two (`body=`):
  - "efficientnet-lite0" (the default, what ships): the stem and first 8 MBConv blocks of the
    ImageNet-pretrained EfficientNet-Lite0 from the PyPI wheel (stages of 24/40/80 channels
    at strides 4/8/16; 254k parameters). ShuffleNetV2's ImageNet weights cannot be had
    offline, and a network this small trained from scratch on 500 photos does not
    generalise; this prefix is the one ImageNet-pretrained body here that fits 0.27M with
    ABLGFM and the head. Transfer learning, as the paper did, with weights we have.
  - "shufflenet": ShuffleNetV2 x0.5 up to stage 4 (stem 24ch + max-pool; stages of 48/96/192
    channels at strides 8/16/32), the paper's body as models.md reconstructs it, from scratch.
- ABLGFM (attention-based local and global feature fusion): stage 3 (local, e.g. 96@14x14) is
  aligned to stage 4's grid (7x7) by a stride-2 depthwise conv, concatenated with stage 4
  (global, e.g. 192@7x7), fused by a point-wise conv, re-weighted by channel attention (pooled
  mean/max -> MLP) and spatial attention (per-pixel mean/max -> 7x7 conv), and added back to
  stage 4 as a residual.
- Cls Head: PWConv -> BN -> ReLU -> global average pool -> dropout -> Linear(classes).
- Transfer for the ShuffleNet body, which has no ImageNet weights: an optional first stage
  teaches the network to reproduce a pretrained EfficientNet-Lite0's ImageNet predictions
  from its pooled head features on augmented training images (training/train.py, pre_distill).
- The pretrained body's stem and stage 2 (generic edges and colours at stride 4, 16k
  parameters) stay frozen, BatchNorm statistics included: fewer weights to fit on 500
  photos, and training runs 3x faster because nothing back-propagates at 112x112 and 56x56.
- Auxiliary heads on the two earliest stages that train (training only): PWConv -> BN ->
  ReLU -> GAP -> Linear; stages 2 and 3 for ShuffleNet, stages 3 and 4 (before the fusion)
  for the EfficientNet-Lite0 body. In eval mode forward() returns the logits alone; the
  exported graph adds the Cls Head's class activation maps (training/cam.py).
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
        return self.fc(self.drop(self.pool(self.pw(x))))

    @staticmethod
    def pool(fmap: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(fmap, 1).flatten(1)


BODIES = ("efficientnet-lite0", "shufflenet")


def shufflenet_body() -> tuple[nn.Module, nn.Module, nn.Module, nn.Module, tuple[int, int, int]]:
    """ShuffleNetV2 x0.5 stem and stages 2-4, randomly initialised."""
    stem = nn.Sequential(conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1))
    return stem, stage(24, 48, 4), stage(48, 96, 8), stage(96, 192, 4), (48, 96, 192)


def efficientnet_lite0_body(pretrained: bool) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module, tuple[int, int, int]]:
    """EfficientNet-Lite0's stem and MBConv blocks 0-7, split into stages at strides 4/8/16."""
    from training.models.efficientnet import EfficientNetLite

    net = EfficientNetLite("efficientnet-lite0", pretrained=pretrained).backbone
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)  # _swish is ReLU6 in the Lite models
    blocks = list(net._blocks)
    return stem, nn.Sequential(*blocks[0:3]), nn.Sequential(*blocks[3:5]), nn.Sequential(*blocks[5:8]), (24, 40, 80)


# Where each part of the Lite0 body comes from in an EfficientNet-Lite0 backbone's state dict
LITE0_BODY_SOURCES = {"stem.0": "_conv_stem", "stem.1": "_bn0",
                      **{f"stage2.{i}": f"_blocks.{i}" for i in range(3)},
                      **{f"stage3.{i}": f"_blocks.{i + 3}" for i in range(2)},
                      **{f"stage4.{i}": f"_blocks.{i + 5}" for i in range(3)}}


def load_lite0_body(model: FastMpoxNet, backbone: dict[str, torch.Tensor]) -> None:
    """Give a Lite0-bodied Fast-MpoxNet the weights of an EfficientNet-Lite0 backbone (e.g.
    skin-pretrained, training/skin.py): every tensor of the body, or a ValueError."""
    state = {ours + key[len(theirs):]: value for ours, theirs in LITE0_BODY_SOURCES.items()
             for key, value in backbone.items() if key.startswith(theirs + ".")}
    body = {k for k in model.state_dict() if k.split(".")[0] in ("stem", "stage2", "stage3", "stage4")}
    if model.body != "efficientnet-lite0" or set(state) != body:
        raise ValueError(f"not a Lite0 body, or the backbone lacks {sorted(body - set(state))[:3]}")
    model.load_state_dict(state, strict=False)


class FastMpoxNet(nn.Module):
    def __init__(self, num_classes: int = 4, head_channels: int | None = None, aux_channels: int = 64,
                 dropout: float = 0.2, ablgfm: bool = True, aux_heads: bool = True,
                 body: str = "efficientnet-lite0", pretrained: bool = True) -> None:
        super().__init__()
        # per body: its stages, head width, the stages the auxiliary heads read (0, 1, 2 = stage 2,
        # stage 3, stage 4 before fusion), what is frozen, and what gets this network's init
        if body == "shufflenet":
            self.stem, self.stage2, self.stage3, self.stage4, channels = shufflenet_body()
            head_channels, self.aux_taps, self.frozen = head_channels or 288, (0, 1), []
            fresh = [self.stem, self.stage2, self.stage3, self.stage4]
        elif body == "efficientnet-lite0":
            self.stem, self.stage2, self.stage3, self.stage4, channels = efficientnet_lite0_body(pretrained)
            head_channels, self.aux_taps = head_channels or 160, (1, 2)
            self.frozen = [self.stem, self.stage2] if pretrained else []
            fresh = []  # EfficientNet's blocks keep their own init
        else:
            raise ValueError(f"unknown Fast-MpoxNet body {body!r}; choose one of: {', '.join(BODIES)}")
        self.body = body
        for part in self.frozen:
            part.requires_grad_(False)
        _, c3, c4 = channels
        self.ablgfm = ABLGFM(c3, c4) if ablgfm else None
        self.head = PWHead(c4, head_channels, num_classes, dropout)
        self.aux2 = PWHead(channels[self.aux_taps[0]], aux_channels, num_classes, 0.0) if aux_heads else None
        self.aux3 = PWHead(channels[self.aux_taps[1]], aux_channels, num_classes, 0.0) if aux_heads else None
        fresh += [self.ablgfm, self.head, self.aux2, self.aux3]
        for m in (m for part in fresh if part is not None for m in part.modules()):
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def train(self, mode: bool = True) -> FastMpoxNet:
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage 2, stage 3, stage 4 before fusion, and the fused map the Cls Head reads."""
        s2 = self.stage2(self.stem(x))
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        fused = self.ablgfm(s3, s4) if self.ablgfm is not None else s4
        return s2, s3, s4, fused

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of the Cls Head (before its classifier): what the ImageNet
        pre-distillation stage teaches (training/train.py, pre_distill)."""
        return F.adaptive_avg_pool2d(self.head.pw(self.stages(x)[3]), 1).flatten(1)

    def forward(self, x: torch.Tensor):
        *maps, fused = self.stages(x)
        logits = self.head(fused)
        if self.training and self.aux2 is not None:
            return logits, self.aux2(maps[self.aux_taps[0]]), self.aux3(maps[self.aux_taps[1]])
        return logits

    # The three parts a class activation map is made of (training/cam.py); in eval mode
    # forward(x) == classifier(pool(feature_map(x))).
    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last spatial map: the Cls Head's PWConv output (e.g. 160@14x14), pooled for the classifier."""
        return self.head.pw(self.stages(x)[3])

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.head.pool(fmap)

    def classifier_layers(self) -> tuple[nn.Module, ...]:
        return self.head.drop, self.head.fc

    def deploy_parameters(self) -> int:
        """Parameters of the exported graph (auxiliary heads excluded)."""
        aux = [m for m in (self.aux2, self.aux3) if m is not None]
        return sum(p.numel() for p in self.parameters()) - sum(p.numel() for m in aux for p in m.parameters())
