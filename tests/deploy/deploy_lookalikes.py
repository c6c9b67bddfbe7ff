"""Layers laid out like mmcv's, in plain PyTorch, for the layer-swap tests (mmcv is not a
dependency). Their forwards follow mmcv's semantics independently of attn_deploy's ops:
criss-cross attention by einsum with a -inf diagonal mask (mmcv/ops/cc_attention.py), CARAFE
reassembly by F.unfold (the definition of mmcv's carafe op).
"""
import torch
import torch.nn.functional as F
from torch import nn


class Scale(nn.Module):
    """mmcv.cnn.Scale: a learnable scalar."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float))

    def forward(self, x):
        return x * self.scale


class CrissCrossAttention(nn.Module):
    """mmcv's layout: query_conv/key_conv (C -> C/8), value_conv, gamma (Scale, or a Parameter
    as in the official CCNet code)."""

    def __init__(self, in_channels: int, gamma: float = 0.0, gamma_as_scale: bool = True):
        super().__init__()
        self.query_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.key_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = Scale(gamma) if gamma_as_scale else nn.Parameter(torch.full((1,), gamma))
        self.in_channels = in_channels

    def forward(self, x):
        h = x.shape[2]
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        mask = torch.diag(torch.full((h,), float("-inf"), device=x.device))
        energy_h = (torch.einsum("bchw,bciw->bwhi", q, k) + mask).transpose(1, 2)
        energy_w = torch.einsum("bchw,bchj->bhwj", q, k)
        attn = F.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)
        out = torch.einsum("bciw,bhwi->bchw", v, attn[..., :h])
        out = out + torch.einsum("bchj,bhwj->bchw", v, attn[..., h:])
        gamma = self.gamma(out) if isinstance(self.gamma, nn.Module) else self.gamma * out
        return gamma + x


def carafe_by_unfold(x, masks, k: int, g: int, s: int):
    n, c, h, w = x.shape
    patches = F.unfold(x, k, padding=(k - 1) // 2).view(n, g, c // g, k * k, h, w)
    patches = patches.repeat_interleave(s, dim=4).repeat_interleave(s, dim=5)
    return (patches * masks.view(n, g, 1, k * k, s * h, s * w)).sum(3).view(n, c, s * h, s * w)


class CARAFEPack(nn.Module):
    """mmcv's layout and forward: compressor, content encoder, pixel shuffle, softmax, carafe."""

    def __init__(self, channels, scale_factor, up_kernel=5, up_group=1, encoder_kernel=3,
                 encoder_dilation=1, compressed_channels=64):
        super().__init__()
        self.channels, self.scale_factor = channels, scale_factor
        self.up_kernel, self.up_group = up_kernel, up_group
        self.encoder_kernel, self.encoder_dilation = encoder_kernel, encoder_dilation
        self.compressed_channels = compressed_channels
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels, up_kernel * up_kernel * up_group * scale_factor * scale_factor,
            encoder_kernel, padding=int((encoder_kernel - 1) * encoder_dilation / 2),
            dilation=encoder_dilation, groups=1)
        nn.init.normal_(self.content_encoder.weight, std=0.1)  # mmcv: 0.001 (near-uniform)

    def forward(self, x):
        mask = F.pixel_shuffle(self.content_encoder(self.channel_compressor(x)),
                               self.scale_factor)
        n, mask_c, h, w = mask.shape
        mask = F.softmax(mask.view(n, mask_c // self.up_kernel ** 2, -1, h, w), dim=2)
        mask = mask.view(n, mask_c, h, w)
        return carafe_by_unfold(x, mask, self.up_kernel, self.up_group, self.scale_factor)


class UserNet(nn.Module):
    """A user's model with all three kinds of layer that need swapping."""

    def __init__(self, channels: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        self.cca = CrissCrossAttention(channels, gamma=0.7)
        self.up = CARAFEPack(channels, 2, up_kernel=3, up_group=2, compressed_channels=8)
        self.pools = nn.ModuleList([nn.AdaptiveAvgPool2d((3, 5)), nn.AdaptiveMaxPool2d(2),
                                    nn.AdaptiveAvgPool2d(1)])

    def forward(self, x):
        y = self.up(self.cca(self.stem(x)))
        return y, torch.cat([p(y).flatten(1) for p in self.pools], 1)


def user_net(channels: int = 16) -> UserNet:
    return UserNet(channels).eval()
