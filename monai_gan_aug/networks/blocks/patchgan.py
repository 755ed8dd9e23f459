# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""PatchGAN discriminator (Isola et al., "Image-to-image translation with conditional adversarial networks",
CVPR 2017) with its receptive field chosen by the caller, and the receptive-field arithmetic.

A PatchGAN classifies every ``N x N`` patch of its input as real or fake: its output is a grid of logits, each
seeing exactly ``N`` pixels per axis. ``N`` is fixed by the convolution stack. Going backwards from one output
unit, a layer with kernel ``k`` (dilation ``d``) and stride ``s`` turns a field of ``r`` units into
``s * (r - 1) + d * (k - 1) + 1`` input units (Sobolev, thesis eq. 4.1: ``I = K + S (O - 1)``). With kernel 4:

* the thesis' discriminators (4.4.3) are ``n`` stride-2 layers ``C64-C128-...`` then the stride-1 output
  convolution: 1 layer -> 10, 2 -> 22, 3 -> 46 (then 94, 190);
* Isola's 70 x 70 PatchGAN (also CycleGAN's) has 3 stride-2 layers, one stride-1 ``C512`` layer and the stride-1
  output convolution: ``4 -> 7 -> 16 -> 34 -> 70`` (the family 16, 34, 70, 142 with 1..4 stride-2 layers).

:class:`PatchGANDiscriminator` builds the layer stack that gives the requested field (10, 22, 46, 70 or any
other member of these two families) and :func:`patchgan_receptive_field` recomputes the field from the layers a
network actually has, so configs and tests can check one against the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

from monai_gan_aug.networks.blocks.norm import dcgan_init_, make_norm

__all__ = [
    "PATCHGAN_RECEPTIVE_FIELDS",
    "PatchGANDiscriminator",
    "patchgan_layer_strides",
    "patchgan_receptive_field",
    "receptive_field",
]

#: Receptive fields named in the sources: 10 / 22 / 46 (Sobolev, thesis 4.4.3) and 70 (Isola et al. 2017).
PATCHGAN_RECEPTIVE_FIELDS = (10, 22, 46, 70)

_MAX_DOWN = 8


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> int:
    """Receptive field (per axis, in input pixels) of one output unit of a chain of convolutions.

    Args:
        layers: ``(kernel_size, stride, dilation)`` per convolution, input to output.
    """
    field = 1
    for k, s, d in reversed(list(layers)):
        field = s * (field - 1) + d * (k - 1) + 1
    return int(field)


def _plans(kernel_size: int) -> dict[int, tuple[int, ...]]:
    """Every field reachable with ``n`` stride-2 layers (1..8), 0 or 1 stride-1 hidden layer and the output layer;
    field -> strides of all convolutions (output layer last)."""
    plans: dict[int, tuple[int, ...]] = {}
    for n_down in range(1, _MAX_DOWN + 1):
        for n_mid in (0, 1):
            strides = (2,) * n_down + (1,) * n_mid + (1,)
            field = receptive_field([(kernel_size, s, 1) for s in strides])
            plans.setdefault(field, strides)
    return plans


def patchgan_layer_strides(receptive_field: int, kernel_size: int = 4) -> tuple[int, ...]:
    """Strides of the convolutions of a PatchGAN with the given receptive field (output convolution last).

    Raises:
        ValueError: when no stack of ``kernel_size`` convolutions of the two families gives that field; the message
            lists the reachable fields.
    """
    plans = _plans(int(kernel_size))
    if isinstance(receptive_field, bool) or int(receptive_field) != receptive_field or receptive_field not in plans:
        reachable = sorted(f for f in plans if f <= 400)
        raise ValueError(
            f"PatchGAN receptive_field={receptive_field!r} cannot be built from kernel-{kernel_size} convolutions; "
            f"choose one of {reachable} (the sources use {list(PATCHGAN_RECEPTIVE_FIELDS)})."
        )
    return plans[int(receptive_field)]


class PatchGANDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017) for 2D or 3D inputs, with a configurable receptive field.

    Layers (Isola's notation, ``Ck`` = convolution-norm-LeakyReLU(0.2) with ``k`` filters, kernel 4, padding 1):
    ``C64`` (no norm) then ``C128``, ``C256``, ``C512``... (channels doubled per layer, capped at ``max_channels``),
    stride 2 except the optional ``C`` stride-1 layer of the 70 x 70 family, then a stride-1 convolution to one
    channel. For a conditional GAN the condition is concatenated to the image on the channel axis by the objective,
    so ``in_channels`` counts both.

    Output: ``(N, 1, *grid)`` logits, one per overlapping patch of ``receptive_field`` pixels per axis
    (30 x 30 for a 256 x 256 input with the 70 x 70 PatchGAN).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (condition + image for Pix2Pix).
        receptive_field: patch size per axis: 10, 22, 46 (thesis), 70 (Isola; CycleGAN) or another reachable value
            (see :func:`patchgan_layer_strides`).
        base_channels: filters of the first layer (``ndf``).
        max_channels: cap on the filter count.
        norm: ``"batch"`` (Pix2Pix), ``"instance"`` (CycleGAN), ``"layer"`` or ``None``.
        kernel_size: convolution kernel (4 in both papers).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2,
        receptive_field: int = 70,
        base_channels: int = 64,
        max_channels: int = 512,
        norm: str | None = "batch",
        kernel_size: int = 4,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"PatchGANDiscriminator: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or base_channels < 1 or max_channels < 1:
            raise ValueError(
                f"PatchGANDiscriminator: in_channels, base_channels and max_channels must be >= 1, got "
                f"{in_channels}, {base_channels}, {max_channels}."
            )
        strides = patchgan_layer_strides(receptive_field, kernel_size)
        self.spatial_dims, self.in_channels = int(spatial_dims), int(in_channels)
        self.receptive_field, self.strides = int(receptive_field), strides
        self.kernel_size = int(kernel_size)
        conv = Conv[Conv.CONV, spatial_dims]
        pad = (kernel_size - 1) // 2
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, s in enumerate(strides[:-1]):
            c_out = min(base_channels * 2**i, max_channels)
            with_norm = i > 0 and norm not in (None, "none")
            layers.append(conv(c_in, c_out, kernel_size, s, pad, bias=not with_norm))
            if with_norm:
                layers.append(make_norm(norm, spatial_dims, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        layers.append(conv(c_in, 1, kernel_size, strides[-1], pad))
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def output_sizes(self, size: int) -> list[int]:
        """Side of the feature map after each convolution for an input of side ``size``."""
        pad, out = (self.kernel_size - 1) // 2, []
        for s in self.strides:
            size = (size + 2 * pad - self.kernel_size) // s + 1
            out.append(size)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchGANDiscriminator expects ({'N, ' + str(self.in_channels)}, *{self.spatial_dims} spatial) inputs, "
                f"got {tuple(x.shape)}; in_channels must count the condition channels plus the image channels."
            )
        for side in x.shape[2:]:
            sizes = self.output_sizes(int(side))
            if min(sizes[:-1]) < 2 or sizes[-1] < 1:
                raise ValueError(
                    f"PatchGANDiscriminator: an input side of {side} is too small for the {self.receptive_field}-pixel "
                    f"patch stack (feature sides {sizes}); use larger images or a smaller receptive_field."
                )
        return self.net(x)


def _conv_layers(module: nn.Module) -> list[tuple[int, int, int]]:
    convs = [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    if not convs:
        raise TypeError(f"{type(module).__name__} has no convolution layers, so it has no receptive field.")
    out = []
    for m in convs:
        ks, ss, ds = set(m.kernel_size), set(m.stride), set(m.dilation)
        if len(ks) != 1 or len(ss) != 1 or len(ds) != 1:
            raise ValueError(
                f"{type(module).__name__}: anisotropic convolution {m} (kernel {m.kernel_size}, stride {m.stride}); "
                "the receptive field is only defined per axis for isotropic layers."
            )
        out.append((ks.pop(), ss.pop(), ds.pop()))
    return out


def patchgan_receptive_field(net_or_config: nn.Module | Mapping) -> int:
    """Receptive field (pixels per axis) of one output logit of a PatchGAN, from the layers it really has.

    Args:
        net_or_config: a network whose convolutions form a chain (e.g. :class:`PatchGANDiscriminator`), or the
            keyword arguments of :class:`PatchGANDiscriminator` (a bundle's ``discriminator_def``; a ``_target_``
            entry is ignored). A config is built on the ``meta`` device, so nothing is allocated.

    Raises:
        TypeError: for anything else, or a network without convolutions.
    """
    if isinstance(net_or_config, Mapping):
        kwargs = {k: v for k, v in net_or_config.items() if not (isinstance(k, str) and k.startswith("_"))}
        with torch.device("meta"):
            net_or_config = PatchGANDiscriminator(**kwargs)
    if not isinstance(net_or_config, nn.Module):
        raise TypeError(
            f"patchgan_receptive_field takes an nn.Module or a PatchGANDiscriminator config dict, got "
            f"{type(net_or_config).__name__}."
        )
    return receptive_field(_conv_layers(net_or_config))
