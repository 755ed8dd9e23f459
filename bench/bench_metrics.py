# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Benchmark: time and peak memory of FID and KID on 2,000 + 2,000 images of 256x256 with a small extractor.

Images are synthesised batch by batch (smooth random fields, the "generated" set slightly shifted and sharper),
embedded with :class:`RandomConvFeatures` and never held in memory all at once, so the peak memory shows the
streaming design: features and statistics only. Writes ``bench/results/metrics_<hostname>.json``.

Usage::

    python bench/bench_metrics.py [--n 2000] [--size 256] [--batch-size 50] [--dim 64] [--n-bootstrap 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monai_gan_aug.metrics import FIDMetric, KIDMetric, RandomConvFeatures

__all__ = ["main", "run", "synthetic_batch"]


def synthetic_batch(n: int, size: int, seed: int, fake: bool) -> torch.Tensor:
    """``n`` grayscale images in ``[-1, 1]``: upsampled low-resolution noise (fake: finer grid, brighter)."""
    g = torch.Generator().manual_seed(seed)
    coarse = 12 if fake else 8
    low = torch.randn(n, 1, coarse, coarse, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    img = img + 0.1 * torch.randn(n, 1, size, size, generator=g)
    return torch.tanh(img + (0.2 if fake else 0.0))


def _current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # psutil is optional
        return float("nan")


def _rss_mb() -> float:
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


@contextlib.contextmanager
def _phase(name: str, log: dict[str, Any]) -> Iterator[None]:
    """Record wall time, peak traced Python allocations and the process peak RSS of a block."""
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    yield
    _, peak = tracemalloc.get_traced_memory()
    log[name] = {
        "seconds": round(time.perf_counter() - t0, 3),
        "tracemalloc_peak_mb": round(peak / 2**20, 2),
        "process_peak_rss_mb": round(_rss_mb(), 1),
        "process_rss_at_end_mb": round(_current_rss_mb(), 1),
    }


def run(n: int = 2000, size: int = 256, batch_size: int = 50, dim: int = 64, n_bootstrap: int = 100) -> dict[str, Any]:
    """Run the benchmark and return the result dict."""
    torch.manual_seed(0)
    extractor = RandomConvFeatures(in_channels=1, dim=dim, seed=0)
    phases: dict[str, Any] = {}
    tracemalloc.start()
    rss_start = _rss_mb()
    fid = FIDMetric(n_bootstrap=0)
    fid_ci = FIDMetric(n_bootstrap=n_bootstrap, max_samples=n)
    kid = KIDMetric(n_bootstrap=n_bootstrap, max_samples=n)
    with _phase("extract_features", phases):
        feats: dict[str, list[torch.Tensor]] = {"real": [], "fake": []}
        for which in ("real", "fake"):
            for b, start in enumerate(range(0, n, batch_size)):
                m = min(batch_size, n - start)
                images = synthetic_batch(m, size, seed=b + (10_000 if which == "fake" else 0), fake=which == "fake")
                f = extractor.extract(images, batch_size=batch_size)
                feats[which].append(f)
                fid(**{"y" if which == "real" else "y_pred": f})  # streaming statistics
    real, fake = torch.cat(feats["real"]), torch.cat(feats["fake"])
    with _phase("fid_value_streaming", phases):
        fid_value = fid.aggregate()["fid"]
    with _phase(f"fid_with_{n_bootstrap}_bootstrap", phases):
        fid_ci(y_pred=fake, y=real)
        fid_full = fid_ci.aggregate()["fid"]
    with _phase(f"kid_100_subsets_with_{n_bootstrap}_bootstrap", phases):
        kid(y_pred=fake, y=real)
        kid_res = kid.aggregate()["kid"]
    tracemalloc.stop()
    return {
        "benchmark": "GAN metrics: FID and KID",
        "images_per_set": n,
        "image_size": [size, size],
        "batch_size": batch_size,
        "extractor": extractor.name,
        "feature_dim": dim,
        "n_bootstrap": n_bootstrap,
        "results": {"fid": fid_value["value"], "fid_ci": [fid_full["ci_low"], fid_full["ci_high"]],
                    "kid": kid_res["value"], "kid_std": kid_res["std"], "kid_ci": [kid_res["ci_low"], kid_res["ci_high"]]},
        "phases": phases,
        "process_rss_at_start_mb": round(rss_start, 1),
        "raw_images_size_per_set_mb_if_held": round(n * size * size * 4 / 2**20, 1),
        "notes": "tracemalloc sees Python/numpy allocations, not torch's allocator; process_peak_rss_mb is the "
        "monotonic peak of the whole process (includes the interpreter, torch, MONAI and tracemalloc's own "
        "bookkeeping, see process_rss_at_start_mb); process_rss_at_end_mb is the resident size after the phase. Timings on a shared machine depend on its load (see machine.load_average).",
        "machine": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.__version__,
            "numpy": __import__("numpy").__version__,
            "cuda_available": torch.cuda.is_available(),
            "load_average_1_5_15min_at_end": [round(v, 2) for v in os.getloadavg()],
        },
    }


def main(argv: list[str] | None = None) -> Path:
    """Parse arguments, run, write ``bench/results/metrics_<hostname>.json`` and return its path."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--n-bootstrap", type=int, default=100)
    p.add_argument("--out", default=None, help="output JSON (default bench/results/metrics_<hostname>.json)")
    a = p.parse_args(argv)
    result = run(a.n, a.size, a.batch_size, a.dim, a.n_bootstrap)
    out = Path(a.out) if a.out else ROOT / "bench" / "results" / f"metrics_{socket.gethostname()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return out


if __name__ == "__main__":
    main()
