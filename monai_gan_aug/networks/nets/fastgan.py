# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FastGAN networks (Liu et al., "Towards faster and stabilized GAN training for high-fidelity few-shot image
synthesis", ICLR 2021), as used for chest X-ray, CT + masks and melanoma + masks in Sobolev's thesis (2.5, 3.1-3.4).

Generator (thesis fig. 2.8): a 4 x 4 start (transposed convolution, batch norm, GLU), then upsampling blocks (nearest
2x, 3x3 convolution, batch norm, GLU; every other block doubled with noise injection) up to ``image_size``, and
skip-layer excitation (SLE) from the 4/8/16/32 maps onto the 64/128/256/512 maps. It emits the image and a
low-resolution twin (128 px at sizes >= 256) that feeds the discriminator's second path.

Discriminator (thesis fig. 2.9): a full-resolution path (residual down-blocks to 8 x 8, SLE from the 256/128/64 maps
onto the 32/16/8 maps, 5 x 5 logits) and a low-resolution path on the twin image (plain down-blocks to 8 x 8, 5 x 5
logits). For real images three small decoders (adaptive pooling to 8 x 8, four upsampling blocks to 128 px) rebuild
the whole image from the 8 x 8 features of both paths and one random quarter of it from the 16 x 16 features: the
self-supervised reconstruction that regularises D (eq. 2.6).

Every convolution is spectral-normalised and weights start from N(0, 0.02), as in the authors' code. Deviations: the
generator ends in ``tanh`` (project convention, images in [-1, 1]); the SLE activation is the paper's LeakyReLU(0.1)
(``sle_activation="swish"`` gives the code's); the channel tables are the authors', extended to small sizes (>= 32)
for tests; ``sle_ratio`` lets small sizes keep SLE connections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_gan_aug.networks.blocks.sle import SkipLayerExcitation, spectral_norm_if

__all__ = ["FastGANDiscriminator", "FastGANGenerator", "NoiseInjection", "crop_quarter", "fastgan_small_size"]

# channel multipliers of the authors' code, by resolution
_G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
_D_MULT = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125, 2048: 0.0625}
_DEC_MULT = {16: 4, 32: 2, 64: 2, 128: 1}


def _check_size(image_size: int, owner: str) -> int:
    if not isinstance(image_size, int) or image_size < 32 or image_size > 1024 or image_size & (image_size - 1):
        raise ValueError(f"{owner}: image_size must be a power of two in 32..1024 (256 in the thesis), got {image_size!r}.")
    return int(math.log2(image_size))


def fastgan_small_size(image_size: int) -> int:
    """Side of the low-resolution twin image: 128 for sizes >= 256 (the authors'), else half the size."""
    return min(128, image_size // 2)


def crop_quarter(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quarter ``part`` (0: low/low, 1: low/high, 2: high/low, 3: high/high index halves of the two spatial axes)
    of ``(N, C, H, W)`` images or feature maps."""
    if part not in (0, 1, 2, 3):
        raise ValueError(f"crop_quarter: part must be 0..3, got {part!r}.")
    h, w = x.shape[2] // 2, x.shape[3] // 2
    rows = slice(0, h) if part in (0, 1) else slice(h, 2 * h)
    cols = slice(0, w) if part in (0, 2) else slice(w, 2 * w)
    return x[:, :, rows, cols]


def _conv(c_in: int, c_out: int, k: int, s: int, p: int, sn: bool, bias: bool = False) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, k, s, p, bias=bias)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return spectral_norm_if(conv, sn)


def _bn(c: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return bn


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` (one noise map per sample, broadcast over channels; weight starts at 0).

    The noise is drawn from the global generator unless given, so seeded sampling can pass its own maps."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        elif noise.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"NoiseInjection: noise of shape {tuple(noise.shape)} does not fit features {tuple(x.shape)}.")
        return x + self.weight * noise.to(x.dtype)


class _UpBlock(nn.Module):
    """Nearest 2x, 3x3 conv to 2c, (noise), BN, GLU; the "comp" block repeats conv/noise/BN/GLU once more."""

    def __init__(self, c_in: int, c_out: int, comp: bool, sn: bool) -> None:
        super().__init__()
        self.comp = comp
        self.conv1, self.bn1 = _conv(c_in, 2 * c_out, 3, 1, 1, sn), _bn(2 * c_out)
        self.noise1 = NoiseInjection() if comp else None
        if comp:
            self.conv2, self.bn2, self.noise2 = _conv(c_out, 2 * c_out, 3, 1, 1, sn), _bn(2 * c_out), NoiseInjection()

    @property
    def num_noises(self) -> int:
        return 2 if self.comp else 0

    def forward(self, x: torch.Tensor, noises: Sequence[torch.Tensor | None] = (None, None)) -> torch.Tensor:
        x = self.conv1(F.interpolate(x, scale_factor=2, mode="nearest"))
        if self.comp:
            x = self.noise1(x, noises[0])
        x = F.glu(self.bn1(x), dim=1)
        if self.comp:
            x = F.glu(self.bn2(self.noise2(self.conv2(x), noises[1])), dim=1)
        return x


class FastGANGenerator(nn.Module):
    """FastGAN generator, ``(N, latent_size)`` -> ``(N, out_channels, image_size, image_size)`` in [-1, 1].

    Args:
        latent_size: latent length (256 in FastGAN).
        out_channels: output channels: image channels plus mask channels when masks are generated with the image.
        image_size: output side, a power of two in 32..1024.
        base_channels: ``ngf`` (64 in FastGAN); channels per resolution follow the authors' table.
        sle_ratio: each map at resolution ``r`` (``4 * sle_ratio <= r <= 512``) is gated by the map at
            ``r / sle_ratio`` (16: SLE 4->64, 8->128, 16->256, 32->512 as in the paper).
        sle_activation: ``"leakyrelu"`` (paper) or ``"swish"`` (authors' code).
        spectral_norm: spectral-normalise the convolutions.
    """

    def __init__(
        self,
        latent_size: int = 256,
        out_channels: int = 1,
        image_size: int = 256,
        base_channels: int = 64,
        sle_ratio: int = 16,
        sle_activation: str = "leakyrelu",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        log2 = _check_size(image_size, "FastGANGenerator")
        if latent_size < 1 or out_channels < 1 or base_channels < 1:
            raise ValueError("FastGANGenerator: latent_size, out_channels and base_channels must be >= 1.")
        if sle_ratio < 2 or sle_ratio & (sle_ratio - 1):
            raise ValueError(f"FastGANGenerator: sle_ratio must be a power of two >= 2, got {sle_ratio}.")
        self.latent_size, self.out_channels, self.image_size = latent_size, out_channels, image_size
        self.small_size = fastgan_small_size(image_size)
        ch = {r: max(1, int(m * base_channels)) for r, m in _G_MULT.items()}
        init_conv = nn.ConvTranspose2d(latent_size, 2 * ch[4], 4, 1, 0, bias=False)
        nn.init.normal_(init_conv.weight, 0.0, 0.02)
        self.init_conv = spectral_norm_if(init_conv, spectral_norm)
        self.init_bn = _bn(2 * ch[4])
        self.resolutions = [2**k for k in range(3, log2 + 1)]
        self.ups = nn.ModuleDict()
        for r in self.resolutions:
            self.ups[str(r)] = _UpBlock(ch[r // 2], ch[r], comp=int(math.log2(r)) % 2 == 1, sn=spectral_norm)
        self.sle = nn.ModuleDict()
        for r in self.resolutions:
            src = r // sle_ratio
            if src >= 4 and r <= 512:
                self.sle[str(r)] = SkipLayerExcitation(2, ch[src], ch[r], 4, sle_activation, spectral_norm)
        self.sle_sources = {int(k): int(k) // sle_ratio for k in self.sle}
        self.to_big = _conv(ch[image_size], out_channels, 3, 1, 1, spectral_norm)
        self.to_small = _conv(ch[self.small_size], out_channels, 1, 1, 0, spectral_norm)

    @property
    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes ``(1, r, r)`` (per sample) of the noise maps the noise injections use, in forward order."""
        shapes: list[tuple[int, int, int]] = []
        for r in self.resolutions:
            shapes += [(1, r, r)] * self.ups[str(r)].num_noises
        return shapes

    def seeded_inputs(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Latents ``(N, latent_size)`` and the noise maps of :attr:`noise_shapes`, drawn from one ``torch.Generator``
        per seed, so sample ``i`` of ``self(z, noises=maps)`` depends on ``seeds[i]`` only."""
        zs, maps = [], [[] for _ in self.noise_shapes]
        for s in seeds:
            gen = torch.Generator().manual_seed(int(s))
            zs.append(torch.randn((self.latent_size,), generator=gen))
            for k, shape in enumerate(self.noise_shapes):
                maps[k].append(torch.randn(tuple(shape), generator=gen))
        return torch.stack(zs).to(device), [torch.stack(m).to(device) for m in maps]

    def forward(
        self, z: torch.Tensor, noises: Sequence[torch.Tensor] | None = None, return_small: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Args:
            z: ``(N, latent_size)`` (or ``(N, latent_size, 1, 1)``).
            noises: one ``(N, 1, r, r)`` map per entry of :attr:`noise_shapes` (None: fresh random noise).
            return_small: also return the low-resolution twin ``(N, out_channels, small_size, small_size)``.
        """
        if z.ndim == 4 and z.shape[2:] == (1, 1):
            z = z.flatten(1)
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"FastGANGenerator expects latents (N, {self.latent_size}), got {tuple(z.shape)}.")
        if noises is not None and len(noises) != len(self.noise_shapes):
            raise ValueError(f"FastGANGenerator: expected {len(self.noise_shapes)} noise maps, got {len(noises)}.")
        feats = {4: F.glu(self.init_bn(self.init_conv(z[:, :, None, None])), dim=1)}
        k = 0
        for r in self.resolutions:
            block = self.ups[str(r)]
            maps = (None, None) if noises is None else tuple(noises[k : k + block.num_noises]) + (None, None)
            k += block.num_noises
            x = block(feats[r // 2], maps)
            if str(r) in self.sle:
                x = self.sle[str(r)](feats[self.sle_sources[r]], x)
            feats[r] = x
        big = torch.tanh(self.to_big(feats[self.image_size]))
        if not return_small:
            return big
        return big, torch.tanh(self.to_small(feats[self.small_size]))


class _DownBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, sn: bool) -> None:
        super().__init__(_conv(c_in, c_out, 4, 2, 1, sn), _bn(c_out), nn.LeakyReLU(0.2, inplace=True))


class _DownBlockComp(nn.Module):
    """Residual down-block: (4x4/2 conv, BN, LReLU, 3x3 conv, BN, LReLU) averaged with (avgpool, 1x1 conv, BN, LReLU)."""

    def __init__(self, c_in: int, c_out: int, sn: bool) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _conv(c_in, c_out, 4, 2, 1, sn), _bn(c_out), nn.LeakyReLU(0.2, inplace=True),
            _conv(c_out, c_out, 3, 1, 1, sn), _bn(c_out), nn.LeakyReLU(0.2),
        )
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), _conv(c_in, c_out, 1, 1, 0, sn), _bn(c_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


class _SimpleDecoder(nn.Module):
    """Adaptive pooling to 8 x 8, upsampling blocks to ``out_size``, 3x3 conv, tanh (FastGAN's D decoders)."""

    def __init__(self, c_in: int, out_channels: int, out_size: int, base: int, sn: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(8)]
        c, r = c_in, 16
        while r <= out_size:
            c_out = max(1, int(_DEC_MULT.get(r, 1) * base))
            layers.append(_UpBlock(c, c_out, comp=False, sn=sn))
            c, r = c_out, r * 2
        layers += [_conv(c, out_channels, 3, 1, 1, sn), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FastGANDiscriminator(nn.Module):
    """FastGAN's self-supervised discriminator.

    ``forward(x, x_small)`` returns ``(N, 2 * 25)`` logits (5 x 5 patches of each path); ``forward(x, x_small,
    part=p)`` (real images) also returns the decoders' reconstructions ``(rec_big, rec_small, rec_part)``, each
    ``(N, in_channels, decoder_size, decoder_size)``: of ``x`` (from the 8 x 8 map of the full path), of ``x_small``
    (from the 8 x 8 map of the small path) and of quarter ``p`` of ``x`` (see :func:`crop_quarter`; from the
    quarter of the 16 x 16 map). The objective compares them with the downsampled images (eq. 2.6).

    Args:
        in_channels: image channels (image + mask channels when masks are generated with the image).
        image_size: input side, a power of two in 32..1024.
        base_channels: ``ndf`` (64 in FastGAN).
        sle_ratio: SLE from the full-path map at ``r`` onto the one at ``r / sle_ratio`` (8 as in the paper: 256->32,
            128->16, 64->8 at 256 px).
        decoder_channels: width of the decoders (32 in the authors' code).
        sle_activation: ``"leakyrelu"`` or ``"swish"``.
        spectral_norm: spectral-normalise the convolutions.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 256,
        base_channels: int = 64,
        sle_ratio: int = 8,
        decoder_channels: int = 32,
        sle_activation: str = "leakyrelu",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        _check_size(image_size, "FastGANDiscriminator")
        if in_channels < 1 or base_channels < 1 or decoder_channels < 1:
            raise ValueError("FastGANDiscriminator: in_channels, base_channels and decoder_channels must be >= 1.")
        if sle_ratio < 2 or sle_ratio & (sle_ratio - 1):
            raise ValueError(f"FastGANDiscriminator: sle_ratio must be a power of two >= 2, got {sle_ratio}.")
        sn = spectral_norm
        self.in_channels, self.image_size = in_channels, image_size
        self.work_size = min(image_size, 256)
        self.small_size = fastgan_small_size(image_size)
        self.decoder_size = self.small_size
        ch = {r: max(1, int(m * base_channels)) for r, m in _D_MULT.items()}
        # full-resolution path: bring the image to the working size W = min(size, 256) with ch[2W] channels
        if image_size <= 256:
            self.from_big = nn.Sequential(_conv(in_channels, ch[2 * self.work_size], 3, 1, 1, sn), nn.LeakyReLU(0.2, inplace=True))
        else:
            layers: list[nn.Module] = []
            c, r = in_channels, image_size
            while r > 256:
                c_out = ch[r]
                layers.append(_conv(c, c_out, 4, 2, 1, sn))
                if layers[:-1]:
                    layers.append(_bn(c_out))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                c, r = c_out, r // 2
            self.from_big = nn.Sequential(*layers)
        self.big_resolutions = [2**k for k in range(int(math.log2(self.work_size)) - 1, 2, -1)]  # W/2 .. 8
        self.down = nn.ModuleDict({str(r): _DownBlockComp(ch[4 * r], ch[2 * r], sn) for r in self.big_resolutions})
        self.sle = nn.ModuleDict()
        for r in self.big_resolutions:
            src = r * sle_ratio
            if src <= self.work_size:
                self.sle[str(r)] = SkipLayerExcitation(2, ch[2 * src], ch[2 * r], 4, sle_activation, sn)
        self.sle_sources = {int(k): int(k) * sle_ratio for k in self.sle}
        self.logits_big = nn.Sequential(
            _conv(ch[16], ch[8], 1, 1, 0, sn), _bn(ch[8]), nn.LeakyReLU(0.2, inplace=True), _conv(ch[8], 1, 4, 1, 0, sn)
        )
        # low-resolution path: small -> small/2 (conv) -> ... -> 8 (down-blocks), ch[4r] channels at r
        small = [nn.Sequential(_conv(in_channels, ch[2 * self.small_size], 4, 2, 1, sn), nn.LeakyReLU(0.2, inplace=True))]
        r = self.small_size // 2
        while r > 8:
            small.append(_DownBlock(ch[4 * r], ch[2 * r], sn))
            r //= 2
        self.from_small = nn.Sequential(*small)
        self.logits_small = _conv(ch[32], 1, 4, 1, 0, sn)
        self.decoder_big = _SimpleDecoder(ch[16], in_channels, self.decoder_size, decoder_channels, sn)
        self.decoder_small = _SimpleDecoder(ch[32], in_channels, self.decoder_size, decoder_channels, sn)
        self.decoder_part = _SimpleDecoder(ch[32], in_channels, self.decoder_size, decoder_channels, sn)

    def forward(
        self, x: torch.Tensor, x_small: torch.Tensor | None = None, part: int | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Args:
            x: ``(N, in_channels, image_size, image_size)``.
            x_small: its low-resolution twin (default: ``x`` area-downsampled to ``small_size``).
            part: quarter to reconstruct (0..3) for real images; None: logits only.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"FastGANDiscriminator expects (N, {self.in_channels}, {self.image_size}, {self.image_size}) inputs, "
                f"got {tuple(x.shape)}; check in_channels (image + mask channels) / image_size."
            )
        if x_small is None:
            x_small = F.interpolate(x, size=(self.small_size,) * 2, mode="area")
        elif x_small.shape != (x.shape[0], self.in_channels, self.small_size, self.small_size):
            raise ValueError(
                f"FastGANDiscriminator: x_small must be {(x.shape[0], self.in_channels, self.small_size, self.small_size)}, "
                f"got {tuple(x_small.shape)}."
            )
        feats = {self.work_size: self.from_big(x)}
        for r in self.big_resolutions:
            f = self.down[str(r)](feats[2 * r])
            if str(r) in self.sle:
                f = self.sle[str(r)](feats[self.sle_sources[r]], f)
            feats[r] = f
        small = self.from_small(x_small)
        logits = torch.cat([self.logits_big(feats[8]).flatten(1), self.logits_small(small).flatten(1)], dim=1)
        if part is None:
            return logits
        rec_big = self.decoder_big(feats[8])
        rec_small = self.decoder_small(small)
        rec_part = self.decoder_part(crop_quarter(feats[16], part))
        return logits, (rec_big, rec_small, rec_part)
