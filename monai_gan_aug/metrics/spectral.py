# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Image-space artefact statistics: stripes and checkerboards, read off the power spectrum.

Looking at a sample grid is the first check of a generator; these numbers make the same check over a whole
synthetic set and put a figure on it. Both compare generated with real images of the same size, so that the
anatomy's own spectrum cancels:

* **stripe index**: stripes across one axis (rows of alternating brightness) add power along that axis only. Per
  frequency band, the *anisotropy* is the largest over the smallest per-axis power; the stripe index is the
  generated anisotropy over the real one, the larger of the two bands (1: as isotropic as the real images; 1.5:
  one axis carries 50 % more power, relative to the others, than in real images).
* **high-frequency share**: the fraction of the power in the top band (near the Nyquist frequency, where the
  checkerboard of nearest / transposed-convolution upsampling sits), generated over real (> 1: checkerboard or
  noise; < 1: blur).

Bands are fractions of the side ``n`` (cycles per image over ``n``): ``mid`` ``[n/8, n/4)`` (16-31 cycles at
128 px) and ``high`` ``[3n/8, n/2]``. Each image (and channel) is normalised to zero mean and unit standard deviation
first, so global brightness and contrast do not count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["BANDS", "axis_spectra", "band_powers", "spectral_artefacts"]

#: frequency bands as fractions of the image side: ``(low, high)``, the upper end included only at 1/2 (Nyquist)
BANDS: dict[str, tuple[float, float]] = {"mid": (1 / 8, 1 / 4), "high": (3 / 8, 1 / 2)}


def _check(images: Any, name: str) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.ndim < 4:
        raise ValueError(f"spectral_artefacts: {name} must be (N, C, *spatial) with 2 or 3 spatial axes, got shape "
                         f"{tuple(x.shape)}.")
    if min(x.shape[2:]) < 8:
        raise ValueError(f"spectral_artefacts: {name} needs sides >= 8 px for its frequency bands, got {tuple(x.shape[2:])}.")
    if x.shape[0] == 0:
        raise ValueError(f"spectral_artefacts: {name} holds no images.")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"spectral_artefacts: {name} contains NaN or infinite values.")
    return x


def axis_spectra(images: Any) -> list[torch.Tensor]:
    """Per spatial axis, the mean power ``|rfft|^2`` along that axis at frequencies ``0 .. n // 2``, averaged over
    images, channels and the other axes; each image-channel normalised to zero mean and unit sd (a constant one
    counts as zeros)."""
    x = _check(images, "images")
    dims = tuple(range(2, x.ndim))
    x = x - x.mean(dim=dims, keepdim=True)
    sd = x.pow(2).mean(dim=dims, keepdim=True).sqrt()
    x = torch.where(sd > 0, x / sd.clamp_min(1e-12), torch.zeros_like(x))
    out = []
    for axis in dims:
        power = torch.fft.rfft(x, dim=axis).abs().pow(2) / x.shape[axis]
        out.append(power.mean(dim=tuple(d for d in range(power.ndim) if d != axis)))
    return out


def band_powers(spectra: list[torch.Tensor], sides: tuple[int, ...], band: tuple[float, float]) -> list[float]:
    """Summed power of each axis' spectrum in ``band`` (fractions of that axis' side)."""
    out = []
    for spec, n in zip(spectra, sides):
        k = torch.arange(spec.shape[0], dtype=torch.float64)
        lo, hi = band
        keep = (k >= lo * n) & ((k < hi * n) if hi < 0.5 else (k <= hi * n))
        out.append(float(spec[keep].sum()))
    return out


def spectral_artefacts(generated: Any, real: Any, bands: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Stripe index and high-frequency share of ``generated`` against ``real`` (both ``(N, C, *spatial)``, the
    same spatial shape; see the module doc).

    Returns:
        ``{"bands": {name: {"generated": [power per axis], "real": [...], "anisotropy_generated",
        "anisotropy_real", "anisotropy_index", "strongest_axis"}}, "stripe_index", "stripe_axis",
        "high_share_generated", "high_share_real", "high_share_ratio"}``; ``strongest_axis`` / ``stripe_axis`` is the
        spatial axis (0 = the first after the channel) whose power rose most over the real images'.

    Raises:
        ValueError: not 2D / 3D images, sides below 8, no images, non-finite values, or different spatial shapes.
    """
    g, r = _check(generated, "generated"), _check(real, "real")
    if g.shape[2:] != r.shape[2:]:
        raise ValueError(f"spectral_artefacts: generated and real images must have the same spatial shape, got "
                         f"{tuple(g.shape[2:])} and {tuple(r.shape[2:])}; resize one set first.")
    bands = dict(bands or BANDS)
    sides = tuple(int(s) for s in g.shape[2:])
    spec_g, spec_r = axis_spectra(g), axis_spectra(r)
    eps = 1e-12
    report: dict[str, Any] = {"bands": {}}
    for name, band in bands.items():
        pg, pr = band_powers(spec_g, sides, band), band_powers(spec_r, sides, band)
        an_g = max(pg) / max(min(pg), eps)
        an_r = max(pr) / max(min(pr), eps)
        rise = [a / max(b, eps) for a, b in zip(pg, pr)]
        report["bands"][name] = {"range": list(band), "generated": pg, "real": pr, "anisotropy_generated": an_g,
                                 "anisotropy_real": an_r, "anisotropy_index": an_g / max(an_r, eps),
                                 "strongest_axis": int(max(range(len(rise)), key=rise.__getitem__))}
    worst = max(report["bands"], key=lambda b: report["bands"][b]["anisotropy_index"])
    report["stripe_index"] = report["bands"][worst]["anisotropy_index"]
    report["stripe_band"] = worst
    report["stripe_axis"] = report["bands"][worst]["strongest_axis"]
    if "high" in bands:
        totals_g = sum(float(s[1:].sum()) for s in spec_g)
        totals_r = sum(float(s[1:].sum()) for s in spec_r)
        share_g = sum(report["bands"]["high"]["generated"]) / max(totals_g, eps)
        share_r = sum(report["bands"]["high"]["real"]) / max(totals_r, eps)
        report.update(high_share_generated=share_g, high_share_real=share_r, high_share_ratio=share_g / max(share_r, eps))
    return report
