# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Networks of alpha-WGAN-GP, 2D and 3D: generator (decoder) G, critic D, encoder E and code discriminator CD.

Two papers, one parameterised set of networks:

* Kwon, Han & Kim, "Generation of 3D brain MRI using auto-encoding generative adversarial networks", MICCAI 2019
  (the original alpha-WGAN-GP, 64^3 volumes): G is a 4-wide transposed convolution from the latent followed by
  (nearest 2x upsampling + 3x3x3 convolution) layers with batch norm and ReLU, ``tanh`` at the end; D is a stack
  of stride-2 4x4x4 convolutions (LeakyReLU 0.2, *batch norm* on the inner layers) ending in a 4-wide convolution;
  E is D's architecture with the latent as output; CD is a 3-layer MLP with batch norm.
* Liang & Chen, "Data augmentation of thyroid ultrasound images using generative adversarial network" (the improved
  alpha-WGAN-GP, 2D 256 x 256): "seven convolution layers in G, D and E. All the convolution layers of G use 3x3
  filters except the first transpose convolution layer uses 4x4 filter. All the convolution layers of D and E use
  4x4 filters. BN and ReLU are implemented in the 1~6 layers of G. IN and Leaky ReLU are implemented in the 2~6 and
  1~6 layers of D ... E shares the same architecture as D but uses BN in 1~6 layers instead of IN. CD is a
  multilayer perceptron consisting of 3 fully-connected layers. Leaky ReLU is implemented in the 1~2 layers of CD";
  latent size 256, LeakyReLU slope 0.2.

The layer count follows the image size: ``log2(image_size) - 1`` layers (7 at 256, 5 at 64 as in Kwon et al., 3 at
16), so the same classes serve both papers and tiny test sizes. :func:`alpha_wgan_networks` builds the set of one
paper's variant.
"""

from __future__ import annotations

import itertools
import math

import torch
from monai.networks.layers import Conv
from torch import nn

from monai_gan_aug.networks.blocks.norm import dcgan_init_, make_norm

__all__ = [
    "ALPHA_WGAN_VARIANTS",
    "AlphaWGANDiscriminator",
    "AlphaWGANEncoder",
    "AlphaWGANGenerator",
    "CodeDiscriminator",
    "alpha_wgan_networks",
]

ALPHA_WGAN_VARIANTS = ("improved", "original", "wgan_gp")


def _n_layers(spatial_dims: int, image_size: int, owner: str) -> int:
    """``log2(image_size) - 1``: the layers of a 2D or 3D network of side ``image_size`` (a power of two >= 8)."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"{owner}: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if not isinstance(image_size, int) or image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"{owner}: image_size must be a power of two >= 8 (e.g. 16, 64, 256), got {image_size!r}.")
    return int(math.log2(image_size)) - 1


class AlphaWGANGenerator(nn.Module):
    """Generator / decoder G of alpha-WGAN-GP (Kwon et al. 2019; Liang & Chen's 7-layer 2D version).

    Layer 1: ``ConvTranspose(latent, c, 4)`` from ``(N, latent, 1, ...)`` to 4 per axis; layers 2..n: nearest 2x
    upsampling and a 3x3(x3) convolution; batch norm + ReLU after every layer but the last, which ends in ``tanh``.
    Channels halve from ``base_channels * 2**(n - 2)`` (capped at ``max_channels``) to ``base_channels`` (Kwon:
    512, 256, 128, 64 at 64^3).

    Args:
        spatial_dims: 2 or 3.
        latent_size: latent length (256 in Liang & Chen); input ``(N, latent)`` or ``(N, latent, 1, ...)``.
        out_channels: image channels.
        image_size: output side, a power of two >= 8; ``log2(image_size) - 1`` layers.
        base_channels: channels of the last hidden layer.
        max_channels: cap on the channel count.
        norm: normalisation of layers 1..n-1 (``"batch"`` in both papers).
        upsample_mode: interpolation of the 2x upsampling (``"nearest"`` as in Kwon et al.'s code).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        latent_size: int = 256,
        out_channels: int = 1,
        image_size: int = 256,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        n = _n_layers(spatial_dims, image_size, "AlphaWGANGenerator")
        if latent_size < 1 or out_channels < 1 or base_channels < 1:
            raise ValueError("AlphaWGANGenerator: latent_size, out_channels and base_channels must be >= 1.")
        self.spatial_dims, self.latent_size, self.image_size, self.out_channels = spatial_dims, latent_size, image_size, out_channels
        self.num_layers = n
        conv, conv_t = Conv[Conv.CONV, spatial_dims], Conv[Conv.CONVTRANS, spatial_dims]
        chans = [min(base_channels * 2 ** (n - 2 - i), max_channels) for i in range(n - 1)]
        bias = norm is None or norm == "none"
        self.head = nn.Sequential(
            conv_t(latent_size, chans[0], 4, 1, 0, bias=bias), make_norm(norm, spatial_dims, chans[0]), nn.ReLU(True)
        )
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(chans):
            layers.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode=upsample_mode),
                    conv(c_in, c_out, 3, 1, 1, bias=bias),
                    make_norm(norm, spatial_dims, c_out),
                    nn.ReLU(True),
                )
            )
        layers.append(nn.Sequential(nn.Upsample(scale_factor=2, mode=upsample_mode), conv(chans[-1], out_channels, 3, 1, 1), nn.Tanh()))
        self.body = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent)`` or ``(N, latent, 1, ...)`` -> ``(N, out_channels, *[image_size] * spatial_dims)``."""
        if z.ndim == 2:
            z = z.reshape(z.shape + (1,) * self.spatial_dims)
        if z.ndim != self.spatial_dims + 2 or z.shape[1] != self.latent_size or any(s != 1 for s in z.shape[2:]):
            raise ValueError(
                f"AlphaWGANGenerator expects latents (N, {self.latent_size}) or (N, {self.latent_size}, "
                f"{', '.join(['1'] * self.spatial_dims)}), got {tuple(z.shape)}."
            )
        return self.body(self.head(z))


class _DownStack(nn.Module):
    """Stride-2 4x4 convolutions from ``image_size`` down to 4, then a 4-wide convolution to ``out_features``."""

    def __init__(
        self,
        owner: str,
        spatial_dims: int,
        in_channels: int,
        image_size: int,
        out_features: int,
        base_channels: int,
        max_channels: int,
        norm: str | None,
        norm_first_layer: bool,
    ) -> None:
        super().__init__()
        n = _n_layers(spatial_dims, image_size, owner)
        if in_channels < 1 or out_features < 1 or base_channels < 1:
            raise ValueError(f"{owner}: in_channels, out_features and base_channels must be >= 1.")
        self.owner = owner
        self.spatial_dims, self.in_channels, self.image_size, self.out_features = spatial_dims, in_channels, image_size, out_features
        self.num_layers = n
        conv = Conv[Conv.CONV, spatial_dims]
        chans = [min(base_channels * 2**i, max_channels) for i in range(n - 1)]
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(chans):
            use_norm = norm not in (None, "none") and (i > 0 or norm_first_layer)
            layers.append(
                nn.Sequential(
                    conv(c_in, c_out, 4, 2, 1, bias=not use_norm),
                    make_norm(norm if use_norm else None, spatial_dims, c_out),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            c_in = c_out
        layers.append(conv(c_in, out_features, 4, 1, 0))
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or any(s != self.image_size for s in x.shape[2:]):
            raise ValueError(
                f"{self.owner} expects (N, {self.in_channels}, {', '.join([str(self.image_size)] * self.spatial_dims)}) "
                f"inputs, got {tuple(x.shape)}; check in_channels / image_size / spatial_dims against the preprocessing."
            )
        return self.net(x).reshape(x.shape[0], self.out_features)


class AlphaWGANDiscriminator(_DownStack):
    """Critic D of alpha-WGAN-GP, returning ``(N, 1)`` scores.

    ``log2(image_size) - 1`` layers: stride-2 4x4(x4) convolutions with LeakyReLU(0.2) down to 4 per axis, then a
    4-wide convolution to one score; the normalisation sits on layers 2..n-1 (none on the first and the last).
    Liang & Chen use instance norm (``norm="instance"``, the improved model: batch norm breaks the per-sample
    gradient penalty of WGAN-GP); Kwon et al. use batch norm (``norm="batch"``, the original).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        image_size: input side, a power of two >= 8.
        base_channels: channels of the first layer, doubled per layer up to ``max_channels``.
        max_channels: cap on the channel count.
        norm: ``"instance"``, ``"batch"``, ``"layer"`` or None.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        image_size: int = 256,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "instance",
    ) -> None:
        super().__init__("AlphaWGANDiscriminator", spatial_dims, in_channels, image_size, 1, base_channels, max_channels, norm, False)


class AlphaWGANEncoder(_DownStack):
    """Encoder E of alpha-WGAN-GP: D's architecture with the latent code ``(N, latent_size)`` as output.

    Liang & Chen: batch norm on layers 1..n-1 (``norm_first_layer=True``); Kwon et al.: D's layout exactly, batch
    norm on layers 2..n-1 (``norm_first_layer=False``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        image_size: input side, a power of two >= 8.
        latent_size: code length (256 in Liang & Chen).
        base_channels: channels of the first layer.
        max_channels: cap on the channel count.
        norm: normalisation (``"batch"`` in both papers).
        norm_first_layer: normalise the first layer too.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        image_size: int = 256,
        latent_size: int = 256,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
        norm_first_layer: bool = True,
    ) -> None:
        super().__init__(
            "AlphaWGANEncoder", spatial_dims, in_channels, image_size, latent_size, base_channels, max_channels, norm,
            norm_first_layer,
        )
        self.latent_size = latent_size


class CodeDiscriminator(nn.Module):
    """Code discriminator (critic) CD: a 3-layer MLP on latent codes, LeakyReLU(0.2) after layers 1 and 2, one score.

    Liang & Chen name no normalisation (``norm=None``, the improved model); Kwon et al.'s code uses batch norm after
    the first two layers (``norm="batch"``) and 750 hidden units.

    Args:
        latent_size: code length.
        hidden_size: units of the two hidden layers.
        norm: None, ``"batch"`` or ``"layer"``.
    """

    def __init__(self, latent_size: int = 256, hidden_size: int = 750, norm: str | None = None) -> None:
        super().__init__()
        if latent_size < 1 or hidden_size < 1:
            raise ValueError(f"CodeDiscriminator: latent_size and hidden_size must be >= 1, got {latent_size}, {hidden_size}.")
        if norm not in (None, "none", "batch", "layer"):
            raise ValueError(f"CodeDiscriminator: norm must be None, 'batch' or 'layer', got {norm!r}.")
        self.latent_size = latent_size

        def norm_layer() -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm1d(hidden_size)
            if norm == "layer":
                return nn.LayerNorm(hidden_size)
            return nn.Identity()

        self.net = nn.Sequential(
            nn.Linear(latent_size, hidden_size),
            norm_layer(),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden_size, hidden_size),
            norm_layer(),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent)`` (or ``(N, latent, 1, ...)``) -> ``(N, 1)``."""
        z = z.reshape(z.shape[0], -1) if z.ndim > 2 else z
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"CodeDiscriminator expects codes (N, {self.latent_size}), got {tuple(z.shape)}.")
        return self.net(z)


def alpha_wgan_networks(
    variant: str = "improved",
    spatial_dims: int = 2,
    in_channels: int = 1,
    image_size: int = 256,
    latent_size: int = 256,
    base_channels: int = 64,
    max_channels: int = 512,
    code_hidden_size: int = 750,
    critic_norm: str | None = "default",
) -> dict[str, nn.Module]:
    """The networks of one variant, keyed as :class:`~monai_gan_aug.losses.objectives.alpha_wgan.AlphaWGANObjective`
    expects them.

    * ``"improved"`` (Liang & Chen): G (batch norm), D (instance norm), E (batch norm on layers 1..n-1), CD (no norm);
    * ``"original"`` (Kwon et al.): G, D (batch norm), E (= D with batch norm on layers 2..n-1), CD (batch norm);
    * ``"wgan_gp"`` (the papers' baseline): G and the improved model's instance-norm critic only.

    Args:
        variant: one of :data:`ALPHA_WGAN_VARIANTS`.
        spatial_dims: 2 or 3.
        in_channels: image channels.
        image_size: side, a power of two >= 8.
        latent_size: latent length.
        base_channels: width parameter of all convolutional networks.
        max_channels: cap on the channel count.
        code_hidden_size: hidden units of CD.
        critic_norm: overrides D's normalisation (``"default"``: the variant's).
    """
    if variant not in ALPHA_WGAN_VARIANTS:
        raise ValueError(f"alpha_wgan_networks: variant must be one of {ALPHA_WGAN_VARIANTS}, got {variant!r}.")
    d_norm = ("batch" if variant == "original" else "instance") if critic_norm == "default" else critic_norm
    nets: dict[str, nn.Module] = {
        "generator": AlphaWGANGenerator(spatial_dims, latent_size, in_channels, image_size, base_channels, max_channels),
        "discriminator": AlphaWGANDiscriminator(spatial_dims, in_channels, image_size, base_channels, max_channels, d_norm),
    }
    if variant != "wgan_gp":
        nets["encoder"] = AlphaWGANEncoder(
            spatial_dims, in_channels, image_size, latent_size, base_channels, max_channels, "batch",
            norm_first_layer=variant == "improved",
        )
        nets["code_discriminator"] = CodeDiscriminator(latent_size, code_hidden_size, "batch" if variant == "original" else None)
    return nets
