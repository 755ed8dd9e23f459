# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Generative adversarial U-Net networks (Chen, Li, Yao, Adeli & Zhang, "Generative adversarial U-Net for
domain-free medical image augmentation", 2021), 2D and 3D.

Generator (section II-B/C): a residual U-Net that takes a real image ``x_j`` of the wanted class and returns a new
image of that class. "The generator contains eight blocks where each block has four 3x3 convolutional layers with
batch renormalization followed by a downscaling or upscaling layer. Downscaling layers are convolutions with stride 2
followed by leaky ReLU, batch normalization and dropout. Upscaling layers are deconvolution with stride 1/2 followed
by leaky ReLU, batch renormalization and dropout ... we use a 1x1 convolutional layer to pass features between blocks"
(the residual shortcut of each block); U-Net skip connections; leaky ReLU with slope 0.01 (eq. 8). At the
bottleneck the encoded ``x_j`` is concatenated with Gaussian noise linearly projected to the bottleneck's grid
(eq. 6, ``z_i = g_l(N(0, I))``) and with the class ("the class information is provided"), here a learned embedding
broadcast over the grid.

Critic: "DenseNet is adopted as the discriminator. Layer normalization is applied instead of batch normalization ...
four dense blocks and four transition layers where each dense block contains four convolutional layers and ends
with a dropout layer". It scores an image pair ``(x_i, x)`` (``x = x_j`` real, ``x = x_g`` fake) and the class
(one-hot maps), channel-concatenated. Layer norm is GroupNorm with one group (normalises each sample over channels
and space), so the WGAN-GP penalty stays per-sample. MONAI's ``DenseNet`` is not used: it has bottleneck layers,
three transitions, batch-norm defaults and per-layer dropout, not the paper's layout.

Batch renormalisation (Ioffe 2017) is :class:`BatchRenorm` below; the paper's down layers say "batch normalization"
but we use the same (re)normalisation everywhere (``norm`` picks it for all layers).
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import Conv, Dropout, Pool
from torch import nn

__all__ = ["BatchRenorm", "GAUNetCritic", "GAUNetGenerator"]


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe, "Batch renormalization: towards reducing minibatch dependence in
    batch-normalized models", NeurIPS 2017) over all axes but the channel axis, any number of spatial dims.

    Training: ``x_hat = (x - mu_B) / sigma_B * r + d`` with ``r = clip(sigma_B / sigma, 1/r_max, r_max)`` and
    ``d = clip((mu_B - mu) / sigma, -d_max, d_max)`` treated as constants; the moving ``mu``, ``sigma`` are updated
    with ``momentum``. Evaluation uses the moving statistics, as batch norm does. ``r_max = 1, d_max = 0`` is batch
    norm. The paper ramps ``r_max``/``d_max`` up from 1/0 early in training; here they are fixed (3 and 5, the
    paper's final values).

    Args:
        num_features: channels.
        eps: added to the variance.
        momentum: update rate of the moving statistics.
        r_max: bound of the scale correction.
        d_max: bound of the shift correction.
        affine: learnable scale and shift.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.01,
        r_max: float = 3.0,
        d_max: float = 5.0,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if num_features < 1 or r_max < 1 or d_max < 0 or not 0 < momentum <= 1:
            raise ValueError(
                f"BatchRenorm: need num_features >= 1, r_max >= 1, d_max >= 0 and 0 < momentum <= 1, got {num_features}, "
                f"{r_max}, {d_max}, {momentum}."
            )
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        self.r_max, self.d_max = float(r_max), float(d_max)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchRenorm({self.num_features}) got input of shape {tuple(x.shape)}.")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        xf = x.float()
        if self.training:
            dims = [0] + list(range(2, x.ndim))
            mean = xf.mean(dims)
            std = (xf.var(dims, unbiased=False) + self.eps).sqrt()
            with torch.no_grad():
                r = (std / self.running_std).clamp(1.0 / self.r_max, self.r_max)
                d = ((mean - self.running_mean) / self.running_std).clamp(-self.d_max, self.d_max)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_std.lerp_(std, self.momentum)
                self.num_batches_tracked.add_(1)
            y = (xf - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
        else:
            y = (xf - self.running_mean.reshape(shape)) / self.running_std.reshape(shape)
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, r_max={self.r_max}, d_max={self.d_max}"


def _norm(norm: str, spatial_dims: int, channels: int) -> nn.Module:
    if norm == "batch_renorm":
        return BatchRenorm(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm3d(channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    if norm == "instance":
        return nn.GroupNorm(channels, channels)
    raise ValueError(f"norm must be 'batch_renorm', 'batch', 'layer' or 'instance', got {norm!r}.")


class _ResBlock(nn.Module):
    """``n_layers`` x (3x3 conv, norm, leaky ReLU) plus a 1x1-conv shortcut (eq. 7: weighted layers + residual)."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, n_layers: int, norm: str, slope: float) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = []
        c = c_in
        for _ in range(n_layers):
            layers += [conv(c, c_out, 3, 1, 1, bias=False), _norm(norm, spatial_dims, c_out), nn.LeakyReLU(slope, inplace=True)]
            c = c_out
        self.body = nn.Sequential(*layers)
        self.shortcut = conv(c_in, c_out, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def _scale_layer(spatial_dims: int, c_in: int, c_out: int, up: bool, norm: str, slope: float, dropout: float) -> nn.Sequential:
    conv = Conv[Conv.CONVTRANS if up else Conv.CONV, spatial_dims]
    layer = conv(c_in, c_out, 4, 2, 1) if up else conv(c_in, c_out, 3, 2, 1)
    return nn.Sequential(layer, nn.LeakyReLU(slope, inplace=True), _norm(norm, spatial_dims, c_out), Dropout[Dropout.DROPOUT, spatial_dims](dropout))


class GAUNetGenerator(nn.Module):
    """Residual U-Net generator of GA-UNet: ``G(x_j, class, z) -> x_g``.

    ``levels`` encoder blocks (residual block, then a stride-2 down layer; channels ``base * 2**k`` up to
    ``max_channels``) and ``levels`` decoder blocks (residual block, then a stride-2 transposed convolution, then
    concatenation with the encoder block's output), 8 blocks in all for ``levels=4`` as in the paper. At the
    bottleneck (``image_size / 2**levels`` per axis) the code of ``x_j`` is concatenated with the projected noise
    (``noise_channels`` maps from a linear layer on ``z``) and the class embedding (``class_channels`` maps). A 3x3
    convolution and ``tanh`` give the output.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of ``x_j``.
        out_channels: channels of ``x_g``.
        num_classes: number of classes.
        image_size: side of the images; divisible by ``2**levels``.
        noise_size: length of ``z``.
        base_channels: channels of the first level.
        max_channels: cap on the channel count.
        levels: encoder (= decoder) blocks.
        layers_per_block: 3x3 convolutions per block (4 in the paper).
        noise_channels: bottleneck maps of the projected noise.
        class_channels: bottleneck maps of the class embedding.
        dropout: dropout of the scaling layers.
        norm: ``"batch_renorm"`` (paper), ``"batch"``, ``"instance"`` or ``"layer"``.
        negative_slope: leaky ReLU slope (0.01, eq. 8).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        num_classes: int = 2,
        image_size: int = 64,
        noise_size: int = 100,
        base_channels: int = 32,
        max_channels: int = 512,
        levels: int = 4,
        layers_per_block: int = 4,
        noise_channels: int = 8,
        class_channels: int = 8,
        dropout: float = 0.2,
        norm: str = "batch_renorm",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"GAUNetGenerator: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if levels < 1 or image_size < 2**levels or image_size % 2**levels:
            raise ValueError(f"GAUNetGenerator: image_size ({image_size}) must be a multiple of 2**levels ({2**levels}).")
        if min(in_channels, out_channels, num_classes, noise_size, base_channels, layers_per_block, noise_channels) < 1:
            raise ValueError("GAUNetGenerator: channel counts, num_classes, noise_size and layers_per_block must be >= 1.")
        if class_channels < 0 or not 0 <= dropout < 1:
            raise ValueError(f"GAUNetGenerator: class_channels must be >= 0 and dropout in [0, 1), got {class_channels}, {dropout}.")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.num_classes, self.image_size, self.noise_size, self.levels = num_classes, image_size, noise_size, levels
        self.noise_channels, self.class_channels = noise_channels, class_channels
        self.bottleneck = (image_size // 2**levels,) * spatial_dims
        conv = Conv[Conv.CONV, spatial_dims]
        ch = [min(base_channels * 2**k, max_channels) for k in range(levels + 1)]
        self.stem = conv(in_channels, ch[0], 3, 1, 1)
        self.enc_blocks = nn.ModuleList(
            [_ResBlock(spatial_dims, ch[k], ch[k], layers_per_block, norm, negative_slope) for k in range(levels)]
        )
        self.downs = nn.ModuleList(
            [_scale_layer(spatial_dims, ch[k], ch[k + 1], False, norm, negative_slope, dropout) for k in range(levels)]
        )
        self.noise_proj = nn.Linear(noise_size, noise_channels * math.prod(self.bottleneck))  # g_l of eq. 6
        self.class_embed = nn.Embedding(num_classes, class_channels) if class_channels else None
        self.dec_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        c_in = ch[levels] + noise_channels + class_channels
        for k in reversed(range(levels)):  # decoder block at level k + 1, then up to level k and concat skip k
            self.dec_blocks.append(_ResBlock(spatial_dims, c_in, ch[k + 1], layers_per_block, norm, negative_slope))
            self.ups.append(_scale_layer(spatial_dims, ch[k + 1], ch[k], True, norm, negative_slope, dropout))
            c_in = 2 * ch[k]
        self.head = nn.Sequential(conv(c_in, out_channels, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Args:
            x: ``(N, in_channels, *[image_size] * spatial_dims)`` reference images ``x_j``.
            label: ``(N,)`` integer classes in ``0..num_classes-1`` (checked by the objective's ``prepare_batch``,
                not here, to keep the forward free of host syncs).
            z: ``(N, noise_size)`` Gaussian noise.
        """
        n = x.shape[0]
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels or any(s != self.image_size for s in x.shape[2:]):
            raise ValueError(
                f"GAUNetGenerator expects (N, {self.in_channels}, {', '.join([str(self.image_size)] * self.spatial_dims)}) "
                f"reference images, got {tuple(x.shape)}."
            )
        label = torch.as_tensor(label, device=x.device).reshape(-1).long()
        if label.shape[0] != n or z.shape != (n, self.noise_size):
            raise ValueError(
                f"GAUNetGenerator: need {n} labels and noise of shape ({n}, {self.noise_size}); got {tuple(label.shape)} "
                f"and {tuple(z.shape)}."
            )
        h = self.stem(x)
        skips = []
        for block, down in zip(self.enc_blocks, self.downs):
            h = block(h)
            skips.append(h)
            h = down(h)
        parts = [h, self.noise_proj(z.to(h.dtype)).reshape(n, self.noise_channels, *self.bottleneck)]
        if self.class_embed is not None:
            emb = self.class_embed(label).to(h.dtype)
            parts.append(emb.reshape(n, self.class_channels, *([1] * self.spatial_dims)).expand(-1, -1, *self.bottleneck))
        h = torch.cat(parts, dim=1)
        for block, up, skip in zip(self.dec_blocks, self.ups, reversed(skips)):
            h = torch.cat([up(block(h)), skip], dim=1)
        return self.head(h)


class _DenseBlock(nn.Module):
    """``n_layers`` x (layer norm, leaky ReLU, 3x3 conv to ``growth`` channels), each concatenated to its input;
    dropout at the end."""

    def __init__(self, spatial_dims: int, c_in: int, growth: int, n_layers: int, slope: float, dropout: float) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.layers = nn.ModuleList(
            [
                nn.Sequential(nn.GroupNorm(1, c_in + i * growth), nn.LeakyReLU(slope), conv(c_in + i * growth, growth, 3, 1, 1))
                for i in range(n_layers)
            ]
        )
        self.dropout = Dropout[Dropout.DROPOUT, spatial_dims](dropout)
        self.out_channels = c_in + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return self.dropout(x)


class GAUNetCritic(nn.Module):
    """DenseNet critic of GA-UNet with layer norm: ``D((x_i, x), class) -> (N, 1)``.

    Input: the channel concatenation of ``x_i``, ``x`` and the one-hot class maps; a 3x3 stem convolution, then
    ``blocks`` x (dense block of ``layers_per_block`` convolutions ending in dropout, transition: layer norm, leaky
    ReLU, 1x1 convolution halving the channels, 2x average pooling), layer norm, leaky ReLU, global average pooling
    and a linear score.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of one image (the pair has twice as many).
        num_classes: number of classes (one-hot maps appended to the input).
        image_size: side of the images; divisible by ``2**blocks``.
        base_channels: stem channels.
        growth_rate: channels added per dense layer.
        blocks: dense blocks (= transition layers), 4 in the paper.
        layers_per_block: convolutions per dense block, 4 in the paper.
        dropout: dropout at the end of each dense block.
        negative_slope: leaky ReLU slope.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 2,
        image_size: int = 64,
        base_channels: int = 64,
        growth_rate: int = 32,
        blocks: int = 4,
        layers_per_block: int = 4,
        dropout: float = 0.2,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"GAUNetCritic: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if blocks < 1 or image_size < 2**blocks or image_size % 2**blocks:
            raise ValueError(f"GAUNetCritic: image_size ({image_size}) must be a multiple of 2**blocks ({2**blocks}).")
        if min(in_channels, num_classes, base_channels, growth_rate, layers_per_block) < 1 or not 0 <= dropout < 1:
            raise ValueError("GAUNetCritic: channel counts, num_classes and layers_per_block must be >= 1, dropout in [0, 1).")
        self.spatial_dims, self.in_channels, self.num_classes, self.image_size = spatial_dims, in_channels, num_classes, image_size
        conv = Conv[Conv.CONV, spatial_dims]
        self.stem = conv(2 * in_channels + num_classes, base_channels, 3, 1, 1)
        layers: list[nn.Module] = []
        c = base_channels
        for _ in range(blocks):
            dense = _DenseBlock(spatial_dims, c, growth_rate, layers_per_block, negative_slope, dropout)
            c_out = max(1, dense.out_channels // 2)
            layers += [
                dense,
                nn.GroupNorm(1, dense.out_channels),
                nn.LeakyReLU(negative_slope),
                conv(dense.out_channels, c_out, 1, 1, 0),
                Pool[Pool.AVG, spatial_dims](2, 2),
            ]
            c = c_out
        layers += [nn.GroupNorm(1, c), nn.LeakyReLU(negative_slope), Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(c, 1)

    def forward(self, x_i: torch.Tensor, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Args:
            x_i: ``(N, in_channels, *spatial)`` real images.
            x: ``(N, in_channels, *spatial)`` the second image of the pair (``x_j`` real or ``x_g`` generated).
            label: ``(N,)`` integer classes.
        """
        expected = (self.in_channels,) + (self.image_size,) * self.spatial_dims
        if tuple(x_i.shape[1:]) != expected or x.shape != x_i.shape:
            raise ValueError(
                f"GAUNetCritic expects two (N, {', '.join(map(str, expected))}) images, got {tuple(x_i.shape)} and "
                f"{tuple(x.shape)}."
            )
        label = torch.as_tensor(label, device=x.device).reshape(-1).long()
        if label.shape[0] != x.shape[0]:
            raise ValueError(f"GAUNetCritic: {x.shape[0]} images but {label.shape[0]} labels.")
        onehot = nn.functional.one_hot(label, self.num_classes).to(x.dtype)
        maps = onehot.reshape(*onehot.shape, *([1] * self.spatial_dims)).expand(-1, -1, *x.shape[2:])
        return self.score(self.features(self.stem(torch.cat([x_i, x, maps], dim=1))))
