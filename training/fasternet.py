"""FasterNet backbone (Chen et al., "Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks",
CVPR 2023), written for this project from the paper's description.

Parameter names follow the authors' release so that checkpoints convert with the same key map:
  patch_embed.proj / patch_embed.norm                      4x4 stride-4 stem conv + BN
  stages.{0,2,4,6}.blocks.{j}.spatial_mixing.partial_conv3  PConv: 3x3 conv on the first C/n_div channels
  stages.{0,2,4,6}.blocks.{j}.mlp.{0,1,3}                   1x1 conv (C -> rC), BN, act (.2), 1x1 conv (rC -> C)
  stages.{1,3,5}.reduction / stages.{1,3,5}.norm            2x2 stride-2 merging conv (C -> 2C) + BN
  norm{0,2,4,6}                                             BN on each of the four detection outputs
"""
from collections import OrderedDict

import torch
from torch import nn

# Variants from the paper (Table 7 / released configs): embed dim, depths, activation.
VARIANTS = {
    't0': dict(embed_dim=40, depths=(1, 2, 8, 2), act='gelu'),
    't1': dict(embed_dim=64, depths=(1, 2, 8, 2), act='gelu'),
    't2': dict(embed_dim=96, depths=(1, 2, 8, 2), act='relu'),
    's': dict(embed_dim=128, depths=(1, 2, 13, 2), act='relu'),
    'm': dict(embed_dim=144, depths=(3, 4, 18, 3), act='relu'),
    'l': dict(embed_dim=192, depths=(3, 4, 18, 3), act='relu'),
}


def _activation(name):
    if name == 'gelu':
        return nn.GELU()
    if name == 'relu':
        return nn.ReLU(inplace=True)
    raise ValueError(f'unknown activation {name!r}')


class PartialConv(nn.Module):
    """Convolve only the leading `dim // n_div` channels; the rest pass through unchanged."""

    def __init__(self, dim, n_div):
        super().__init__()
        self.conv_channels = dim // n_div
        self.partial_conv3 = nn.Conv2d(self.conv_channels, self.conv_channels, 3, padding=1, bias=False)

    def forward(self, x):
        head = self.partial_conv3(x[:, : self.conv_channels])
        return torch.cat([head, x[:, self.conv_channels:]], dim=1)


class FasterNetBlock(nn.Module):
    """x + MLP(PConv(x)); the MLP is two pointwise convs with BN + activation between them."""

    def __init__(self, dim, n_div, mlp_ratio, act):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.spatial_mixing = PartialConv(dim, n_div)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            _activation(act),
            nn.Conv2d(hidden, dim, 1, bias=False),
        )

    def forward(self, x):
        return x + self.mlp(self.spatial_mixing(x))


class Stage(nn.Module):
    def __init__(self, dim, depth, n_div, mlp_ratio, act):
        super().__init__()
        self.blocks = nn.Sequential(*[FasterNetBlock(dim, n_div, mlp_ratio, act) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(x)


class Merge(nn.Module):
    """Downsample by 2 and double the channels."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Conv2d(dim, 2 * dim, kernel_size=2, stride=2, bias=False)
        self.norm = nn.BatchNorm2d(2 * dim)

    def forward(self, x):
        return self.norm(self.reduction(x))


class Stem(nn.Module):
    def __init__(self, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=4, stride=4, bias=False)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x):
        return self.norm(self.proj(x))


class FasterNetFeatures(nn.Module):
    """FasterNet trunk returning the four stage outputs (strides 4, 8, 16, 32) for an FPN."""

    def __init__(self, variant='t0', in_chans=3, mlp_ratio=2.0, n_div=4):
        super().__init__()
        cfg = VARIANTS[variant]
        dim, depths, act = cfg['embed_dim'], cfg['depths'], cfg['act']
        self.variant = variant
        self.patch_embed = Stem(in_chans, dim)
        layers = []
        self.out_channels = []
        for i, depth in enumerate(depths):
            width = dim * 2 ** i
            layers.append(Stage(width, depth, n_div, mlp_ratio, act))
            self.out_channels.append(width)
            if i + 1 < len(depths):
                layers.append(Merge(width))
        # stages alternates stage / merge, so the outputs sit at indices 0, 2, 4, 6
        self.stages = nn.Sequential(*layers)
        self.out_indices = tuple(range(0, len(layers), 2))
        for idx, width in zip(self.out_indices, self.out_channels):
            self.add_module(f'norm{idx}', nn.BatchNorm2d(width))
        self._init_weights()

    def _init_weights(self):
        # From-scratch training: He init for convs, unit BN (the release uses trunc-normal for ImageNet).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        outs = OrderedDict()
        for idx, layer in enumerate(self.stages):
            x = layer(x)
            if idx in self.out_indices:
                outs[str(len(outs))] = getattr(self, f'norm{idx}')(x)
        return outs
