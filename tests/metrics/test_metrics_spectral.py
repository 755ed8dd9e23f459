# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the spectral artefact statistics (monai_gan_aug.metrics.spectral): stripes and checkerboards."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from monai_gan_aug.metrics.spectral import axis_spectra, band_powers, spectral_artefacts


def _smooth(n: int, side: int, dims: int = 2, seed: int = 0) -> torch.Tensor:
    """Isotropic smooth random images (N, 1, *[side] * dims): white noise blurred by a separable Gaussian."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 1) + (side,) * dims, generator=g)
    k = torch.exp(-torch.arange(-4, 5, dtype=torch.float32) ** 2 / (2 * 0.8**2))
    k = k / k.sum()
    for axis in range(dims):
        shape = [1, 1] + [1] * dims
        shape[2 + axis] = 9
        conv = F.conv2d if dims == 2 else F.conv3d
        pad = [0] * (2 * dims)
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = 4
        x = conv(F.pad(x, pad, mode="circular"), k.reshape(shape))
    return x


def test_real_against_itself_is_one_and_spectra_shapes():
    a, b = _smooth(16, 64, seed=0), _smooth(16, 64, seed=1)
    spectra = axis_spectra(a)
    assert len(spectra) == 2 and all(s.shape == (33,) for s in spectra)
    # Parseval: per line, sum_k |X_k|^2 / n (rfft: inner frequencies twice) is the line's sum of squares; the
    # images are normalised to unit variance, so it is the side length on average
    for s in spectra:
        assert float(s[0] + 2 * s[1:-1].sum() + s[-1]) == pytest.approx(64.0, rel=1e-6)
    report = spectral_artefacts(a, b)
    assert report["stripe_index"] == pytest.approx(1.0, abs=0.15)
    assert report["high_share_ratio"] == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("axis", [0, 1])
def test_stripes_across_one_axis_raise_the_stripe_index_on_that_axis(axis):
    real = _smooth(16, 64, seed=1)
    gen = _smooth(16, 64, seed=2)
    period = 5.0  # 12.8 cycles over 64 px: in the mid band [8, 16)
    wave = 0.6 * torch.sin(2 * math.pi * torch.arange(64) / period)
    shape = [1, 1, 1, 1]
    shape[2 + axis] = 64
    striped = gen / gen.std() + wave.reshape(shape)
    clean = spectral_artefacts(gen, real)
    report = spectral_artefacts(striped, real)
    assert report["stripe_index"] > 1.5 > clean["stripe_index"]
    assert report["stripe_band"] == "mid" and report["stripe_axis"] == axis
    assert report["bands"]["mid"]["strongest_axis"] == axis


def test_checkerboard_raises_the_high_frequency_share_not_the_stripe_index():
    real, gen = _smooth(16, 64, seed=3), _smooth(16, 64, seed=4)
    idx = torch.arange(64)
    checker = ((idx[:, None] + idx[None, :]) % 2 * 2 - 1).float()
    noisy = gen / gen.std() + 0.3 * checker
    report = spectral_artefacts(noisy, real)
    assert report["high_share_ratio"] > 3.0
    assert report["stripe_index"] < 1.2  # the checkerboard is the same along both axes
    blurred = spectral_artefacts(F.avg_pool2d(F.pad(gen, (1, 1, 1, 1), mode="circular"), 3, stride=1), real)
    assert blurred["high_share_ratio"] < 0.5  # blur removes high-frequency power


def test_3d_stripes_and_band_powers():
    real, gen = _smooth(4, 32, dims=3, seed=5), _smooth(4, 32, dims=3, seed=6)
    wave = 0.8 * torch.sin(2 * math.pi * torch.arange(32) / 5.0).reshape(1, 1, 1, 1, 32)
    report = spectral_artefacts(gen / gen.std() + wave, real)
    assert report["stripe_axis"] == 2 and report["stripe_index"] > 1.5
    spectra = axis_spectra(real)
    assert len(spectra) == 3
    assert len(band_powers(spectra, (32, 32, 32), (1 / 8, 1 / 4))) == 3


def test_constant_images_and_bad_input():
    real = _smooth(4, 32)
    flat = torch.zeros(4, 1, 32, 32)
    assert all(float(s.abs().sum()) == 0.0 for s in axis_spectra(flat))
    with pytest.raises(ValueError, match="same spatial shape"):
        spectral_artefacts(_smooth(4, 64), real)
    with pytest.raises(ValueError, match=r"\(N, C, \*spatial\)"):
        spectral_artefacts(torch.zeros(32, 32), real)
    with pytest.raises(ValueError, match=">= 8"):
        spectral_artefacts(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        spectral_artefacts(torch.full((2, 1, 32, 32), float("nan")), real)
    with pytest.raises(ValueError, match="no images"):
        spectral_artefacts(torch.zeros(0, 1, 32, 32), real)
