# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Shared benchmark helpers: machine facts, this machine's matmul GFLOP/s, timing after warm-up, FLOP counting with
``torch.utils.flop_counter.FlopCounterMode`` (conv + matmul work, a lower bound), the common command line, the one
result record every family benchmark writes, and JSON output.

Benchmarks are never run by the test suite; run them by hand (``make bench`` or ``python -m bench.<name>``).

Result files: ``bench/results/<name>_<tag>.json`` hold a JSON list of records built by :func:`make_record`; the tag is
``<hostname>-<device type>`` (``-quick`` appended for ``--quick`` smoke runs) unless ``--tag`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from bench.references import REFERENCE_MATMUL_GFLOPS, TARGETS, reference
from monai_gan_aug.engines.utils import cpu_supports_bf16

__all__ = [
    "RESULTS",
    "SCHEMA_VERSION",
    "RECORD_KEYS",
    "add_size_options",
    "bench_main",
    "bench_parser",
    "compare_config",
    "compute_ratios",
    "gpu_bf16_peak_gflops",
    "utilisation",
    "count_gflop",
    "engine_config",
    "engine_options",
    "engine_suffix",
    "host_tag",
    "machine_info",
    "make_record",
    "matmul_gflops",
    "median_seconds",
    "peak_memory",
    "peak_rss_mb",
    "print_record",
    "reset_peak_memory",
    "selected",
    "setup_run",
    "size_defaults",
    "sync",
    "time_calls",
    "write_result",
]

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA_VERSION = 1
RECORD_KEYS = (
    "schema_version", "family", "name", "label", "quick", "config", "machine", "step_s", "step_s_all",
    "gflop_per_step", "achieved_gflops", "gen_images_per_s", "gen_batch", "gen_s_all", "peak_memory", "reference",
    "ratios", "utilisation", "extra", "created",
)
# a benchmark's GFLOP per step must lie within this factor of the reference's for the two to count as the same work
FLOP_TOLERANCE = 2.0


# ---------------------------------------------------------------------------------------------------- timing, FLOPs
def sync(device: torch.device | str) -> None:
    """Wait for queued device work (CUDA); a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


#: Dense bf16 tensor-core peaks (GFLOP/s) from NVIDIA's datasheets, matched against ``torch.cuda.get_device_name()``
#: in this order (the first substring that matches wins).
GPU_BF16_PEAK_GFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756_000.0),
    ("H100 NVL", 835_000.0),
    ("H200 NVL", 835_000.0),
    ("H100", 989_400.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989_400.0),
    ("A100", 312_000.0),
)


def gpu_bf16_peak_gflops(gpu_name: str | None) -> float | None:
    """The datasheet dense bf16 peak of a GPU by its name, ``None`` when unknown."""
    if not gpu_name:
        return None
    for key, peak in GPU_BF16_PEAK_GFLOPS:
        if key.lower() in gpu_name.lower():
            return peak
    return None


def utilisation(achieved_gflops: float | None, machine: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """What fraction of the hardware a step uses: of this run's fp32 matmul yardstick, of its bf16 matmul
    yardstick (runs with ``--amp``) and, on a known GPU with bf16 autocast, of the datasheet bf16 peak."""
    def frac(den: Any) -> float | None:
        return achieved_gflops / den if achieved_gflops and den else None

    bf16 = bool(config.get("amp"))
    return {"of_fp32_matmul": frac(machine.get("matmul_gflops")),
            "of_bf16_matmul": frac(machine.get("matmul_bf16_gflops")) if bf16 else None,
            "of_gpu_bf16_peak": frac(machine.get("gpu_bf16_peak_gflops")) if bf16 else None}


def matmul_gflops(n: int = 2048, repeats: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Measured GFLOP/s of an ``n x n`` matmul: the yardstick that makes figures from different machines comparable."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = time_calls(lambda: a @ b, warmup=1, repeats=repeats, device=device)
    return 2 * n**3 / statistics.median(times) / 1e9


def time_calls(fn: Callable[[], Any], warmup: int = 2, repeats: int = 7, device: str = "cpu") -> list[float]:
    """Wall seconds of each of ``repeats`` calls of ``fn()`` after ``warmup`` calls (device synchronised)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_seconds(fn: Callable[[], Any], warmup: int = 2, repeats: int = 7, device: str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return statistics.median(time_calls(fn, warmup, repeats, device))


class _GlobalOnly:
    """Stand-in for FlopCounterMode's module tracker: its backward hooks break ``torch.autograd.grad`` (gradient
    penalties), and only the global count is needed."""

    parents = {"Global"}

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def count_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP of one ``fn()`` call counted by ``FlopCounterMode`` (forward, backward and double-backward conv/matmul
    work)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


# ---------------------------------------------------------------------------------------------------- memory
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new CUDA peak (CPU: the process RSS peak cannot be reset; it is per process)."""
    if torch.device(device).type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: torch.device | str) -> dict[str, Any]:
    """Peak memory since :func:`reset_peak_memory`: ``torch.cuda.max_memory_allocated`` on CUDA, the process peak
    RSS on CPU (monotonic over the whole process: run one family per process for per-family figures)."""
    out: dict[str, Any] = {"host_peak_rss_mb": peak_rss_mb()}
    if torch.device(device).type == "cuda":
        sync(device)
        out.update(kind="cuda_max_memory_allocated", mb=torch.cuda.max_memory_allocated() / 2**20,
                   cuda_max_memory_reserved_mb=torch.cuda.max_memory_reserved() / 2**20)
    else:
        out.update(kind="process_peak_rss", mb=out["host_peak_rss_mb"])
    return out


# ---------------------------------------------------------------------------------------------------- machine
def host_tag(device: str = "cpu", quick: bool = False) -> str:
    """``<hostname>-<device type>`` (``-quick`` for smoke runs), safe as part of a file name."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "host"
    return f"{host}-{torch.device(device).type}" + ("-quick" if quick else "")


def machine_info(device: str = "cpu", matmul: float | None = None) -> dict[str, Any]:
    """Facts about this run's machine, including the 2048 x 2048 fp32 matmul GFLOP/s measured now (or ``matmul``)
    and its ratio to the reference machine's (``matmul_scale``)."""
    mm = matmul_gflops(device=device) if matmul is None else float(matmul)
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": str(device),
        "matmul_gflops": mm,
        "matmul_scale": mm / REFERENCE_MATMUL_GFLOPS,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_bf16_peak_gflops"] = gpu_bf16_peak_gflops(info["gpu"])
    else:
        info["cpu_native_bf16"] = cpu_supports_bf16()
    return info


# ---------------------------------------------------------------------------------------------------- command line
def bench_parser(prog: str, description: str, families: Iterable[str]) -> argparse.ArgumentParser:
    """The command line every family benchmark shares; scripts add their own options to it."""
    families = tuple(families)
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="default: cuda when available, else cpu")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; 1 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps, median reported (default 7; 1 with --quick)")
    p.add_argument("--steps", dest="repeats", type=int, help=argparse.SUPPRESS)  # the former name of --repeats
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (figures not comparable)")
    p.add_argument("--channels_last", action="store_true", help="AdversarialTrainer(channels_last=True) (2D networks)")
    p.add_argument("--amp", action="store_true", help="AdversarialTrainer(amp=True): bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX)")
    p.add_argument("--compile", action="store_true", help="AdversarialTrainer(compile=True): torch.compile each network")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(families)}")
    p.add_argument("--results_dir", default=str(RESULTS), help="where the JSON goes (default bench/results)")
    p.add_argument("--tag", default=None, help="file tag (default <hostname>-<device type>[-quick])")
    p.set_defaults(_families=families)
    return p


def setup_run(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve defaults (``--quick``: 1 warm-up, 1 repeat), set the thread count, check ``--only`` and return
    :func:`machine_info` (matmul yardstick measured now, on ``args.device``)."""
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.repeats is None:
        args.repeats = 1 if args.quick else 7
    if args.warmup < 0 or args.repeats < 1:
        raise SystemExit(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup}, {args.repeats}.")
    families = args._families
    only = [f.strip() for f in args.only.split(",") if f.strip()] if args.only else list(families)
    unknown = [f for f in only if f not in families]
    if unknown:
        raise SystemExit(f"--only: unknown families {unknown}; this benchmark has {list(families)}.")
    args.only_families = only
    if args.amp and torch.device(args.device).type not in ("cuda", "cpu"):
        print("note: --amp runs on CUDA and CPU; running fp32 on", args.device, flush=True)
        args.amp = False
    if args.amp and torch.device(args.device).type == "cpu" and not cpu_supports_bf16():
        print("note: this CPU has no native bf16 kernels (AVX512-BF16/AMX): --amp is emulated and slow", flush=True)
    torch.set_num_threads(args.threads)
    if args.tag is None:
        args.tag = host_tag(args.device, args.quick)
    info = machine_info(args.device, matmul=matmul_gflops(device=args.device, repeats=3 if args.quick else 5))
    if args.amp:  # the yardstick of the precision the convolutions run in
        info["matmul_bf16_gflops"] = matmul_gflops(device=args.device, repeats=3 if args.quick else 5, dtype=torch.bfloat16)
    return info


def add_size_options(parser: argparse.ArgumentParser, full: Mapping[str, Any], quick: Mapping[str, Any],
                     helps: Mapping[str, str] | None = None) -> None:
    """``--<key>`` options for the size settings in ``full`` (unset: ``None``, filled by :func:`size_defaults`)."""
    for k, v in full.items():
        note = (helps or {}).get(k, "")
        parser.add_argument(f"--{k}", type=type(v), default=None,
                            help=f"{note + ', ' if note else ''}default {v} ({quick[k]} with --quick)")


def size_defaults(args: argparse.Namespace, full: Mapping[str, Any], quick: Mapping[str, Any]) -> None:
    """Fill the size options left unset (``None``) from ``quick`` with ``--quick``, else from ``full``."""
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)


def bench_main(name: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], list[dict[str, Any]]],
               argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``argv``, ``run(args)`` and write the records to ``<results_dir>/<name>_<tag>.json``."""
    args = parser.parse_args(argv)
    records = run(args)
    write_result(name, records, args.results_dir, args.tag)
    return records


def selected(args: argparse.Namespace, family: str) -> bool:
    return family in args.only_families


def _compile_setting(args: argparse.Namespace, penalty: bool) -> bool | list[str]:
    # torch.compile cannot differentiate twice: with a gradient penalty only the generator is compiled
    return ["generator"] if (args.compile and penalty) else bool(args.compile)


def engine_options(args: argparse.Namespace, penalty: bool = False) -> dict[str, Any]:
    """The AdversarialTrainer keyword arguments the command line sets (``penalty``: the family's critic takes a gradient
    penalty, so ``--compile`` compiles the generator only)."""
    return {"channels_last": bool(args.channels_last), "amp": bool(args.amp), "compile": _compile_setting(args, penalty)}


def engine_config(args: argparse.Namespace, channels_last: bool | None = None, penalty: bool = False) -> dict[str, Any]:
    """Engine settings recorded in each record's config."""
    cl = bool(args.channels_last) if channels_last is None else channels_last
    return {"channels_last": cl, "amp": bool(args.amp), "compile": _compile_setting(args, penalty),
            "dtype": "bf16 autocast" if args.amp else "fp32"}


def engine_suffix(args: argparse.Namespace, channels_last: bool | None = None) -> str:
    """The engine settings for a record's label, e.g. ``", channels_last, bf16"``."""
    cl = bool(args.channels_last) if channels_last is None else channels_last
    return "".join(s for s, on in ((", channels_last", cl), (", bf16", args.amp), (", compile", args.compile)) if on)


# ---------------------------------------------------------------------------------------------------- records
def compare_config(config: Mapping[str, Any], ref_config: Mapping[str, Any]) -> list[str]:
    """Differences between a benchmark's config and the settings a reference states (``[]``: the same)."""
    return [f"{k}: {config.get(k)!r} here, {v!r} in the reference" for k, v in ref_config.items()
            if v is not None and config.get(k) != v]


def compute_ratios(
    step_s: float | None,
    gflop: float | None,
    gen_img_s: float | None,
    ref: Mapping[str, Any] | None,
    matmul: float | None,
    config: Mapping[str, Any] | None = None,
    gen_batch: int | None = None,
) -> dict[str, Any] | None:
    """The issue's comparisons of one measurement with its reference.

    * ``step_ratio_equal_flops = (step_s / gflop) / (ref_step_s / ref_gflop)`` (seconds per GFLOP, ours over the
      reference's; target <= 0.8);
    * ``gen_ratio = gen_img_s / ref_gen_img_s`` (target >= 1.25);
    * ``matmul_scale = matmul / 175`` (this run's matmul GFLOP/s over the reference machine's) and the normalised
      ratios ``step_ratio_equal_flops * matmul_scale`` and ``gen_ratio / matmul_scale`` (as if both ran at the same
      matmul rate);
    * ``comparable``: the config matches what the reference states and the GFLOP per step are within a factor 2;
      ``gen_comparable`` additionally needs the generation batch to match when the reference states it;
    * ``*_target_met``: whether a ratio meets its target (:data:`bench.references.TARGETS`), ``None`` when the
      measurement is not comparable with the reference (the ratio itself is still given).

    ``None`` without a reference; individual entries are ``None`` when an input is missing.
    """
    if ref is None:
        return None
    scale = matmul / REFERENCE_MATMUL_GFLOPS if matmul else None
    step_ratio = (step_s / gflop) / (ref["step_s"] / ref["gflop"]) if step_s and gflop else None
    gen_ratio = gen_img_s / ref["gen_img_s"] if gen_img_s and ref.get("gen_img_s") else None
    flop_ratio = gflop / ref["gflop"] if gflop else None
    notes = compare_config(config or {}, ref.get("config", {}))
    if flop_ratio is not None and not 1 / FLOP_TOLERANCE <= flop_ratio <= FLOP_TOLERANCE:
        notes.append(f"GFLOP/step {flop_ratio:.3g}x the reference's")
    gen_notes = list(notes)
    if ref.get("gen_batch") is not None and gen_batch != ref["gen_batch"]:
        gen_notes.append(f"generation batch {gen_batch} here, {ref['gen_batch']} in the reference")

    def _le(x: float | None, bound: float) -> bool | None:
        return None if x is None else bool(x <= bound)

    def _ge(x: float | None, bound: float) -> bool | None:
        return None if x is None else bool(x >= bound)

    comparable, gen_comparable = not notes, not gen_notes
    smax, gmin = TARGETS["step_ratio_equal_flops_max"], TARGETS["gen_ratio_min"]
    step_norm = step_ratio * scale if step_ratio is not None and scale else None
    gen_norm = gen_ratio / scale if gen_ratio is not None and scale else None
    return {
        "step_ratio_equal_flops": step_ratio,
        "gen_ratio": gen_ratio,
        "flop_ratio": flop_ratio,
        "matmul_scale": scale,
        "step_ratio_equal_flops_normalised": step_norm,
        "gen_ratio_normalised": gen_norm,
        "step_target": f"<= {smax}",
        "gen_target": f">= {gmin}",
        "step_target_met": _le(step_ratio, smax) if comparable else None,
        "gen_target_met": _ge(gen_ratio, gmin) if gen_comparable else None,
        "step_target_met_normalised": _le(step_norm, smax) if comparable else None,
        "gen_target_met_normalised": _ge(gen_norm, gmin) if gen_comparable else None,
        "comparable": comparable,
        "gen_comparable": gen_comparable,
        "comparability_notes": gen_notes,
    }


def make_record(
    *,
    family: str,
    name: str,
    label: str,
    config: Mapping[str, Any],
    machine: Mapping[str, Any],
    step_s_all: list[float],
    gflop_per_step: float | None,
    gen_images_per_s: float | None,
    gen_batch: int | None,
    peak_memory: Mapping[str, Any],
    reference_key: str | None,
    quick: bool = False,
    gen_s_all: list[float] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one result record of every family benchmark (keys :data:`RECORD_KEYS`).

    ``step_s`` is the median of ``step_s_all``; ``achieved_gflops = gflop_per_step / step_s``; ``reference`` is the
    issue's entry ``reference_key`` (:mod:`bench.references`) and ``ratios`` the comparisons of
    :func:`compute_ratios`, computed with ``machine["matmul_gflops"]`` from the same run.
    """
    if not step_s_all:
        raise ValueError("step_s_all is empty: time at least one step.")
    step_s = statistics.median(step_s_all)
    achieved = gflop_per_step / step_s if gflop_per_step else None
    ref = reference(reference_key)
    return {
        "schema_version": SCHEMA_VERSION,
        "family": family,
        "name": name,
        "label": label,
        "quick": bool(quick),
        "config": dict(config),
        "machine": dict(machine),
        "step_s": step_s,
        "step_s_all": list(step_s_all),
        "gflop_per_step": gflop_per_step,
        "achieved_gflops": achieved,
        "gen_images_per_s": gen_images_per_s,
        "gen_batch": gen_batch,
        "gen_s_all": list(gen_s_all or []),
        "peak_memory": dict(peak_memory),
        "reference": ref,
        "ratios": compute_ratios(step_s, gflop_per_step, gen_images_per_s, ref, machine.get("matmul_gflops"), config,
                                 gen_batch),
        "utilisation": utilisation(achieved, machine, config),
        "extra": dict(extra or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _is_record_list(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, list) and all(isinstance(r, dict) and "schema_version" in r for r in data)


def write_result(name: str, records: list[dict[str, Any]], results_dir: str | Path | None = None,
                 tag: str | None = None) -> Path:
    """Write ``records`` (a list of :func:`make_record` dicts) to ``<results_dir>/<name>_<tag>.json``.

    Refuses to overwrite a file in another layout (the results of earlier benchmark versions are kept)."""
    out_dir = Path(results_dir) if results_dir is not None else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}_{tag or host_tag()}.json"
    if path.exists() and not _is_record_list(path):
        raise FileExistsError(f"{path} exists in another layout; pass another --tag or --results_dir.")
    path.write_text(json.dumps(records, indent=1, default=str))
    print(f"wrote {path}", flush=True)
    return path


def print_record(r: Mapping[str, Any]) -> None:
    """One line per record on stdout."""
    ratios = r.get("ratios") or {}

    def f(x: Any, spec: str = ".3g") -> str:
        return "-" if x is None else format(x, spec)

    print(f"{r['family']:>16} | {r['label']} | step {f(r['step_s'], '.4f')} s, {f(r['gflop_per_step'])} GFLOP, "
          f"{f(r['achieved_gflops'])} GFLOP/s | gen {f(r['gen_images_per_s'])} img/s | "
          f"step ratio {f(ratios.get('step_ratio_equal_flops'))}, gen ratio {f(ratios.get('gen_ratio'))}", flush=True)
