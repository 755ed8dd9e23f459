# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Profile a few training steps of one GAN family with ``torch.profiler``: where the step time goes (by op and by
category: convolution forward / backward, matmul, norm layers, elementwise, memory and layout, optimizer, autograd),
and at what GFLOP/s the FLOP-heavy ops run. It is what explains a family that misses the step-time target of issue
#8.

    python -m bench.profile_step --family dcgan [--config dcgan_64_b16] [--steps 3] [--warmup 1] [--threads 2]
                                 [--channels_last] [--quick] [--out bench/results/profile_dcgan_<tag>.json]

The trainer and batch are the family benchmark's own: the benchmark script's ``run`` is called with its own parser's
arguments, and its measurement calls (``measure_engine`` / ``measure_calls``) are intercepted, so the profile runs
exactly the configuration the benchmark times (options this script does not know are passed on to the benchmark's
parser, e.g. ``--mask_channels 0`` for FastGAN). ``--config`` picks the configuration by reference key
(:mod:`bench.references`) or record name; without it the family's first configuration is profiled.

Writes ``<out>.json`` and ``<out>.md`` (default ``bench/results/profile_<family>_<tag>.json``, tag
``<hostname>-<device type>[-<config>][-channels_last][-amp][-compile][-quick]``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from bench.common import RESULTS, _GlobalOnly, host_tag, machine_info, sync
from bench.engine_timing import Measurement
from bench.references import REFERENCES, TARGETS, reference
from bench.run_all import SCRIPTS

__all__ = [
    "CATEGORIES",
    "FAMILY_SCRIPTS",
    "SCHEMA_VERSION",
    "StepTarget",
    "build_step",
    "main",
    "markdown",
    "op_category",
    "profile_target",
]

SCHEMA_VERSION = 1
TOP_OPS = 25
# benchmark family -> the bench script (bench/bench_<script>.py) that builds its trainer: the scripts' own FAMILIES
# (bench.run_all.SCRIPTS; the families themselves come from the registry, monai_gan_aug.engines.families)
FAMILY_SCRIPTS: dict[str, str] = {family: script for script, fams in SCRIPTS.items() for family in fams}

CONV_FWD, CONV_BWD = "convolution fwd", "convolution bwd"
MATMUL, NORM = "matmul/linear", "batch/instance norm"
ELEMENTWISE, MEMORY = "elementwise/activation", "memory/copy/layout"
OPTIMIZER, AUTOGRAD, OTHER = "optimizer", "autograd other", "other"
CATEGORIES = (CONV_FWD, CONV_BWD, MATMUL, NORM, ELEMENTWISE, MEMORY, OPTIMIZER, AUTOGRAD, OTHER)

# ------------------------------------------------------------------------------------------------ op categories
_CONV = re.compile(r"conv(?!ert)")
_NORM = re.compile(r"(batch|instance|layer|group)_?norm")
_AUTOGRAD_NODE = re.compile(r"^[A-Z][A-Za-z0-9]*Backward\d*$")
_MATMUL_OPS = frozenset({
    "mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "einsum", "addmv", "mv", "dot", "vdot",
    "tensordot", "bilinear", "scaled_dot_product_attention", "outer", "ger",
})
_MEMORY_OPS = frozenset({
    "copy", "contiguous", "to", "to_copy", "copy_from", "copy_from_and_resize", "cat", "stack", "hstack", "vstack",
    "clone", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "fill", "zero", "resize",
    "as_strided", "view", "unsafe_view", "view_as", "reshape", "reshape_alias", "permute", "transpose", "t",
    "expand", "expand_as", "squeeze", "unsqueeze", "flatten", "unflatten", "split", "split_with_sizes", "chunk",
    "unbind", "narrow", "select", "slice", "movedim", "unfold", "flip", "roll", "repeat", "repeat_interleave",
    "detach", "alias", "lift_fresh", "set", "tile", "index_select", "gather", "scatter", "index", "index_put",
    "masked_select", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "resolve_conj", "resolve_neg",
    "unsafe_split", "split_copy", "select_backward", "slice_backward", "unsqueeze_copy", "index_put_impl",
    "resize_as", "arange", "linspace", "masked_scatter", "index_add", "index_copy", "diagonal", "tril", "triu",
})
_ELEMENTWISE_OPS = frozenset({
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "sign", "sgn", "pow", "sqrt", "rsqrt", "exp", "exp2", "log",
    "log2", "log10", "log1p", "expm1", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "relu6", "leaky_relu",
    "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "hardtanh", "hardswish", "hardsigmoid", "glu",
    "threshold", "prelu", "clamp", "clamp_min", "clamp_max", "clip", "where", "masked_fill", "lerp", "addcmul",
    "addcdiv", "maximum", "minimum", "fmax", "fmin", "eq", "ne", "gt", "lt", "ge", "le", "logical_and", "logical_or",
    "logical_not", "bitwise_and", "bitwise_or", "sum", "mean", "var", "std", "var_mean", "std_mean", "prod", "amax",
    "amin", "max", "min", "aminmax", "argmax", "argmin", "norm", "linalg_vector_norm", "frobenius_norm", "softmax",
    "log_softmax", "dropout", "native_dropout", "floor", "ceil", "round", "trunc", "frac", "fmod", "remainder",
    "square", "erf", "erfc", "erfinv", "hypot", "atan2", "cumsum", "cumprod", "logsumexp", "nan_to_num", "isnan",
    "isinf", "isfinite", "all", "any", "sort", "topk", "xlogy", "mse_loss", "l1_loss", "smooth_l1_loss",
    "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "nll_loss", "nll_loss2d",
    "cross_entropy", "cross_entropy_loss", "softmax_backward_data", "log_softmax_backward_data", "sigmoid_backward",
    "tanh_backward", "threshold_backward", "elu_backward", "gelu_backward", "silu_backward", "softplus_backward",
    "hardtanh_backward", "logit", "copysign", "grid_sampler_2d", "grid_sampler_3d", "grid_sampler",
    "affine_grid_generator", "sum_to_size",
})
_ELEMENTWISE_PATTERN = re.compile(r"(pool|upsample|interpolate|_loss$|cross_entropy|softmax)")
_RANDOM_OR_SYNC = re.compile(r"(rand|normal|uniform|bernoulli|multinomial|local_scalar_dense|^item$|nonzero)")


def _core(base: str) -> str:
    """``aten::_to_copy`` -> ``to_copy``, ``leaky_relu_backward`` -> ``leaky_relu``, ``add_`` -> ``add``."""
    core = base.lstrip("_")
    core = re.sub(r"(_backward(_data|_input|_weight|_elemt)?|_with_indices|_out|_functional)+$", "", core)
    return core.rstrip("_")


def op_category(name: str) -> str:
    """The category of one profiler event name (without its call-stack context; :func:`aggregate` also puts every
    op that runs inside ``Optimizer.step`` / ``Optimizer.zero_grad`` in ``optimizer``).

    Autograd graph nodes (``ConvolutionBackward0``, ``autograd::engine::evaluate_function: ...``,
    ``AccumulateGrad``) are ``autograd other``: their own (self) time is the engine's overhead, the work of a
    backward runs in their aten children (``aten::convolution_backward`` is ``convolution bwd``)."""
    if name.startswith("Optimizer.") or "_foreach_" in name or "fused_adam" in name or "fused_sgd" in name:
        return OPTIMIZER
    if _AUTOGRAD_NODE.match(name) or ("autograd" in name.lower() and not name.startswith("aten::")):
        return AUTOGRAD
    base = name.split("::")[-1].strip().lower()  # record_function annotations fall through to "other"
    if _CONV.search(base):
        return CONV_BWD if "backward" in base else CONV_FWD
    if _NORM.search(base):
        return NORM
    core = _core(base)
    if core in _MATMUL_OPS or core.startswith("scaled_dot_product"):
        return MATMUL
    if core in _MEMORY_OPS or "pad" in core:
        return MEMORY
    if _RANDOM_OR_SYNC.search(core):
        return OTHER
    if core in _ELEMENTWISE_OPS or _ELEMENTWISE_PATTERN.search(core):
        return ELEMENTWISE
    return OTHER


# ------------------------------------------------------------------------------------------------ the step to profile
class StepTarget:
    """One configuration of a family benchmark, built by the benchmark's own code: either an ignite engine with its
    repeated batch (``kind == "engine"``: run through ``engine.run()``, as ``measure_engine`` times it) or a step
    function (``kind == "calls"``: called directly, as ``measure_calls`` times it)."""

    def __init__(self, kind: str, obj: Any, batch: Any = None) -> None:
        self.kind, self.obj, self.batch = kind, obj, batch
        self.family = self.name = self.label = self.reference_key = None
        self.config: dict[str, Any] = {}
        self.machine: dict[str, Any] | None = None
        self.args: argparse.Namespace | None = None
        self.gen_batch: int | None = None

    def one_step(self) -> Any:
        """One more training step outside the engine loop (as ``measure_engine`` counts FLOPs)."""
        if self.kind == "engine":
            return self.obj._iteration(self.obj, self.batch)
        return self.obj()

    def run(self, n: int, on_start: Callable[[int], None], on_end: Callable[[int], None]) -> None:
        """Run ``n`` steps, calling ``on_start(i)`` / ``on_end(i)`` (``i`` from 0) around each."""
        if self.kind == "calls":
            for i in range(n):
                on_start(i)
                self.obj()
                on_end(i)
            return
        from ignite.engine import Events

        engine = self.obj

        def started(_: Any) -> None:
            on_start(engine.state.iteration - 1)

        def completed(_: Any) -> None:
            on_end(engine.state.iteration - 1)

        engine.add_event_handler(Events.ITERATION_STARTED, started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, completed)
        try:
            engine.run()
        finally:
            engine.remove_event_handler(started, Events.ITERATION_STARTED)
            engine.remove_event_handler(completed, Events.ITERATION_COMPLETED)
        if engine.state.iteration < n:
            raise RuntimeError(f"the engine ran {engine.state.iteration} iterations, {n} were needed.")


class _Selected(Exception):
    def __init__(self, target: StepTarget) -> None:
        super().__init__(target.name)
        self.target = target


@contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    if hasattr(module, name):
        with mock.patch.object(module, name, value):
            yield
    else:
        yield


def _bench_args(module: Any, argv: Sequence[str]) -> tuple[argparse.Namespace, Callable[[argparse.Namespace], Any]]:
    """The benchmark script's own parser applied to ``argv``, and its ``run`` function (taken from the
    ``bench_main`` call of the script's ``main``, which is intercepted: nothing runs, nothing is written)."""
    seen: dict[str, Any] = {}

    def fake_bench_main(name: str, parser: argparse.ArgumentParser, run: Callable, argv: Any = None) -> list:
        seen.update(parser=parser, run=run)
        return []

    with mock.patch.object(module, "bench_main", fake_bench_main):
        module.main([])
    return seen["parser"].parse_args(list(argv)), seen["run"]


def build_step(family: str, config: str | None, bench_argv: Sequence[str], generation: bool = False) -> StepTarget:
    """Build the trainer (or step function) that ``bench/bench_<script>.py`` times for ``family``, configured by
    ``bench_argv`` (that script's command line), and return it without running a step.

    The script's ``run`` is called with ``measure_engine`` / ``measure_calls`` / ``record_from`` / ``print_record``
    replaced: each configuration's trainer is caught where the benchmark would time it, and the first whose family
    matches and whose reference key or record name equals ``config`` (any, when ``None``) is returned, with the
    record's name, label, config and reference key and the machine facts ``setup_run`` measured. The other
    configurations are built but not run. With ``generation`` the target is the configuration's generation call
    (the ``generate`` callable the benchmark times, at its generation batch) instead of its training step."""
    if family not in FAMILY_SCRIPTS:
        from bench.run_all import coverage

        covered = coverage()
        if covered.get(family) is not None:  # a registered name whose benchmark uses an alias (pggan_bbox -> pggan)
            family = covered[family][1]
        elif family in covered:
            raise SystemExit(f"--family {family!r} is a registered family with no benchmark (no bench/bench_*.py lists "
                             f"it in FAMILIES); profiled families: {sorted(FAMILY_SCRIPTS)}")
        else:
            raise SystemExit(f"--family {family!r}: known families {sorted(FAMILY_SCRIPTS)}")
    module = importlib.import_module(f"bench.bench_{FAMILY_SCRIPTS[family]}")
    args, run = _bench_args(module, bench_argv)
    pending: list[StepTarget] = []
    seen_rows: list[str] = []
    machine: dict[str, Any] = {}

    def generation_target(generate: Callable[[], Any] | None, gen_batch: int | None) -> StepTarget:
        target = StepTarget("calls", generate)
        target.gen_batch = gen_batch
        return target

    def fake_measure_engine(engine: Any, batch: Any, generate: Callable[[], Any] | None = None,
                            gen_batch: int | None = None, **_: Any) -> Measurement:
        pending.append(generation_target(generate, gen_batch) if generation else StepTarget("engine", engine, batch))
        return Measurement(step_s_all=[float("nan")])

    def fake_measure_calls(step: Callable[[], Any], generate: Callable[[], Any] | None = None,
                           gen_batch: int | None = None, **_: Any) -> Measurement:
        pending.append(generation_target(generate, gen_batch) if generation else StepTarget("calls", step))
        return Measurement(step_s_all=[float("nan")])

    def fake_record_from(*positional: Any, family: str, name: str, label: str, config: dict[str, Any],
                         reference_key: str | None, **_: Any) -> dict[str, Any]:
        # record_from(m, args, machine, *, family, name, label, config, reference_key, extra=None)
        seen_rows.append(f"{name} (family {family}, reference {reference_key})")
        target = pending.pop()
        if family == wanted and wanted_config in (None, reference_key, name):
            target.family, target.name, target.label, target.config = family, name, label, dict(config)
            target.reference_key = reference_key
            target.args = positional[1] if len(positional) > 1 else args
            raise _Selected(target)
        return {}

    def recording_setup_run(args_: argparse.Namespace) -> dict[str, Any]:
        from bench.common import setup_run

        machine.update(setup_run(args_))
        return machine

    wanted, wanted_config = family, config
    with ExitStack() as stack:
        for attr, fake in (("measure_engine", fake_measure_engine), ("measure_calls", fake_measure_calls),
                           ("record_from", fake_record_from), ("print_record", lambda r: None),
                           ("setup_run", recording_setup_run)):
            stack.enter_context(_patched(module, attr, fake))
        try:
            run(args)
        except _Selected as selected:
            target = selected.target
            if generation and target.obj is None:
                raise SystemExit(f"{target.name} has no generation measurement (e.g. a PGGAN fade-in stage).") from None
            target.machine = dict(machine) if machine else machine_info(args.device)
            return target
    raise SystemExit(f"no configuration of {family!r} matches --config {config!r}; the benchmark built: "
                     + ("; ".join(seen_rows) or "none"))


# ------------------------------------------------------------------------------------------------ profiling
def _flop_counts(target: StepTarget) -> dict[str, float]:
    """FLOPs of one more step per aten op (``aten::convolution``, ``aten::convolution_backward``, ``aten::mm``...)
    counted by ``FlopCounterMode``, the same counter as the benchmarks' GFLOP per step."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        target.one_step()
    counts = counter.get_flop_counts().get("Global", {})
    return {str(op).replace(".", "::", 1): float(n) for op, n in counts.items() if n}


def _self_device_us(evt: Any) -> float:
    name = "self_device_time_total" if hasattr(evt, "self_device_time_total") else "self_cuda_time_total"
    return float(getattr(evt, name, 0.0) or 0.0)


def aggregate(events: Sequence[Any], key_averages: Sequence[Any], window_s: float, steps: int,
              flop_counts: Mapping[str, float] | None = None, device: bool = False,
              top: int = TOP_OPS) -> dict[str, Any]:
    """Per-step figures from a profile: the top ``top`` ops by self CPU time (``key_averages``, grouped by name),
    the ops with FLOPs, and the categories (from ``events``, so that ops inside ``Optimizer.*`` count as optimizer).

    Shares are of the profiled wall time ``window_s``. FLOPs per op come from ``FlopCounterMode`` (``flop_counts``:
    ``aten::convolution``, ``aten::convolution_backward``, ``aten::mm``..., the profiler reports none for a
    convolution's backward) and, for categories the counter has nothing in, from the profiler. An op's GFLOP/s is
    its FLOPs over its total time (self + children): the work of ``aten::convolution`` runs in a child
    (``aten::mkldnn_convolution``...). A category's GFLOP/s is its counted FLOPs (``FlopCounterMode``; the
    profiler's when ``flop_counts`` is empty) over its self time."""
    window_us = window_s * 1e6
    flop_counts = dict(flop_counts or {})
    cat_us: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    cat_dev_us: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    cat_ops: dict[str, dict[str, float]] = {c: defaultdict(float) for c in CATEGORIES}
    name_cat: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    in_optimizer: dict[int, bool] = {}

    def under_optimizer(evt: Any) -> bool:
        chain, node, found = [], evt, False
        while node is not None:
            if id(node) in in_optimizer:
                found = in_optimizer[id(node)]
                break
            chain.append(node)
            if node.name.startswith("Optimizer."):
                found = True
                break
            node = node.cpu_parent
        for n in chain:
            in_optimizer[id(n)] = found
        return found

    cpu_events = [e for e in events if str(getattr(e, "device_type", "CPU")).endswith("CPU")]
    for evt in cpu_events:
        cat = OPTIMIZER if under_optimizer(evt) else op_category(evt.name)
        us = float(evt.self_cpu_time_total)
        cat_us[cat] += us
        cat_dev_us[cat] += _self_device_us(evt)
        cat_ops[cat][evt.name] += us
        name_cat[evt.name][cat] += us

    def main_category(name: str) -> str:
        cats = name_cat.get(name) or {op_category(name): 1.0}
        return max(cats, key=cats.get)

    # FLOPs by name: FlopCounterMode's (one step; conv, conv backward, matmul at the aten level), then the
    # profiler's (with_flops) for the ops of categories the counter has nothing for (elementwise mul/add...), so
    # that a convolution is not counted twice (aten::conv2d by the profiler, aten::convolution by the counter)
    rows = {e.key: e for e in key_averages}
    flops: dict[str, tuple[float, str]] = {}
    for name, n in flop_counts.items():
        if name in rows:
            flops[name] = (n, "FlopCounterMode")
    counted_categories = {main_category(n) for n in flops}
    for name, e in rows.items():
        if getattr(e, "flops", 0) and name not in flops and main_category(name) not in counted_categories:
            flops[name] = (float(e.flops) / steps, "torch.profiler")

    def op_row(e: Any) -> dict[str, Any]:
        f, source = flops.get(e.key, (None, None))
        total_ms = float(e.cpu_time_total) / 1e3 / steps
        row = {
            "name": e.key,
            "category": main_category(e.key),
            "calls": e.count / steps,
            "self_cpu_ms": float(e.self_cpu_time_total) / 1e3 / steps,
            "share": float(e.self_cpu_time_total) / window_us if window_us else None,
            "total_cpu_ms": total_ms,
            "flops": f,
            "flops_source": source,
            "gflops": f / (total_ms * 1e6) if f and total_ms else None,
        }
        if device:
            row["self_device_ms"] = _self_device_us(e) / 1e3 / steps
        return row

    ranked = sorted(rows.values(), key=lambda e: float(e.self_cpu_time_total), reverse=True)
    top_ops = [op_row(e) for e in ranked[:top]]
    flop_ops = sorted((op_row(rows[n]) for n in flops), key=lambda r: r["total_cpu_ms"], reverse=True)

    # a category's FLOPs, over its self time: FlopCounterMode's counts (the profiler's only without them: its
    # elementwise estimates are too partial to rate a category)
    cat_flops: dict[str, float] = defaultdict(float)
    for name, f in (flop_counts or {n: f for n, (f, _) in flops.items()}).items():
        cat_flops[main_category(name)] += f
    categories = []
    for c in CATEGORIES:
        ms = cat_us[c] / 1e3 / steps
        f = cat_flops.get(c) or None
        entry = {
            "category": c,
            "self_cpu_ms": ms,
            "share": cat_us[c] / window_us if window_us else None,
            "gflop_per_step": f / 1e9 if f else None,
            "gflops": f / (ms * 1e6) if f and ms else None,
            "top_ops": [n for n, _ in sorted(cat_ops[c].items(), key=lambda kv: kv[1], reverse=True)[:5]],
        }
        if device:
            entry["self_device_ms"] = cat_dev_us[c] / 1e3 / steps
        categories.append(entry)
    total_self = sum(cat_us.values())
    return {
        "self_cpu_s_per_step": total_self / 1e6 / steps,
        "total_self_cpu_share": total_self / window_us if window_us else None,
        "unattributed_share": 1 - total_self / window_us if window_us else None,
        "categories": categories,
        "top_ops": top_ops,
        "flop_ops": flop_ops,
    }


def profile_target(target: StepTarget, *, warmup: int, steps: int, plain_steps: int, device: str,
                   count_flops: bool = True) -> dict[str, Any]:
    """``warmup`` untimed steps, ``plain_steps`` timed without the profiler, ``steps`` profiled (CPU, + CUDA on a
    CUDA device; shapes and FLOPs recorded), then (``count_flops``) one more step under ``FlopCounterMode``."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=activities, record_shapes=True, with_flops=True)
    first = warmup + plain_steps
    total = first + steps
    marks: dict[int, float] = {}
    plain: list[float] = []
    profiled: list[float] = []
    window: list[float] = []

    def on_start(i: int) -> None:
        if i == first:
            sync(device)
            prof.start()
            window.append(time.perf_counter())
        if i >= warmup:
            sync(device)
            marks[i] = time.perf_counter()

    def on_end(i: int) -> None:
        if i < warmup or i >= total:
            return
        sync(device)
        now = time.perf_counter()
        (plain if i < first else profiled).append(now - marks[i])
        if i == total - 1:
            window.append(now)
            prof.stop()

    try:
        target.run(total, on_start, on_end)
    finally:
        if len(window) == 1:  # the run stopped inside the profiled steps
            prof.stop()
    if len(profiled) != steps:
        raise RuntimeError(f"profiled {len(profiled)} steps, {steps} were asked for.")
    window_s = window[1] - window[0]
    counts = _flop_counts(target) if count_flops else {}
    out = aggregate(prof.events(), prof.key_averages(), window_s, steps, counts, device=cuda)
    gflop = sum(counts.values()) / 1e9 if counts else None
    step_s = window_s / steps
    plain_s = statistics.median(plain) if plain else None
    return {
        "activities": [a.name for a in activities],
        "profiled_s": window_s,
        "step_s": step_s,
        "step_s_all": profiled,
        "step_s_plain": plain_s,
        "step_s_plain_all": plain,
        "profiler_overhead": step_s / plain_s if plain_s else None,
        "gflop_per_step": gflop,
        "achieved_gflops": gflop / (plain_s or step_s) if gflop else None,
        "flops_by_op": {k: v / 1e9 for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
        **out,
    }


# ------------------------------------------------------------------------------------------------ output
def _f(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(result: Mapping[str, Any]) -> str:
    """The profile as a markdown page: settings, categories, FLOP-heavy ops and the top ops by self CPU time."""
    m, p, s = result["machine"], result["profile"], result["settings"]
    ref = result.get("reference") or {}
    dev = "self_device_ms" in (p["categories"][0] if p["categories"] else {})
    out = [
        f"# Step profile: {result['family']} `{result['name']}`", "",
        f"Created {result['created']} by `{result['command']}`.", "",
        f"- configuration: {result['label']}" + (" (**quick smoke run**: not comparable)" if result["quick"] else ""),
        f"- reference: {ref.get('key')}: {ref.get('implementation')}, {ref.get('label')}, {ref.get('step_s')} s / "
        f"{ref.get('gflop')} GFLOP per step" if ref else "- reference: none",
        f"- machine: {m.get('hostname')}, {m.get('device')}{' (' + m['gpu'] + ')' if m.get('gpu') else ''}, torch "
        f"{m.get('torch')}, {m.get('threads')} threads, matmul {_f(m.get('matmul_gflops'), '.0f')} GFLOP/s "
        f"(scale {_f(m.get('matmul_scale'))} of the reference machine's 175)",
        f"- steps: {s['warmup']} warm-up, {s['plain_steps']} timed without the profiler, {s['steps']} profiled "
        f"({', '.join(p['activities'])}; record_shapes, with_flops)",
        f"- step time: {_f(p['step_s'], '.4g')} s profiled, {_f(p['step_s_plain'], '.4g')} s without the profiler "
        f"(overhead x{_f(p['profiler_overhead'])}); {_f(p['gflop_per_step'], '.4g')} GFLOP per step "
        f"(FlopCounterMode), {_f(p['achieved_gflops'])} GFLOP/s achieved",
        f"- ops' self CPU time: {_pct(p['total_self_cpu_share'])} of the profiled wall time; outside ops "
        f"(Python, engine, waiting): {_pct(p['unattributed_share'])}",
        f"- step-time target of issue 8: <= {TARGETS['step_ratio_equal_flops_max']}x the reference's seconds per "
        "GFLOP (see the benchmark's record for the ratio)", "",
        "## Categories", "",
        "Share = self time / profiled wall time (per step); GFLOP/s = the category's counted FLOPs / its self time.", "",
        "| category | self CPU ms/step | share |" + (" self device ms/step |" if dev else "")
        + " GFLOP/step | GFLOP/s | top ops |",
        "|---|---:|---:|" + ("---:|" if dev else "") + "---:|---:|---|",
    ]
    for c in p["categories"]:
        row = [c["category"], _f(c["self_cpu_ms"], ".4g"), _pct(c["share"])]
        if dev:
            row.append(_f(c.get("self_device_ms"), ".4g"))
        row += [_f(c["gflop_per_step"], ".4g"), _f(c["gflops"]), ", ".join(f"`{n}`" for n in c["top_ops"][:3])]
        out.append("| " + " | ".join(row) + " |")
    out += ["", "## Ops with FLOPs", "",
            "GFLOP/s = FLOPs / the op's total time (self + children).", "",
            "| op | calls/step | total CPU ms/step | GFLOP/step | GFLOP/s | FLOPs from |", "|---|---:|---:|---:|---:|---|"]
    for r in p["flop_ops"]:
        out.append(f"| `{r['name']}` | {_f(r['calls'])} | {_f(r['total_cpu_ms'], '.4g')} | "
                   f"{_f(r['flops'] / 1e9 if r['flops'] else None, '.4g')} | {_f(r['gflops'])} | {r['flops_source']} |")
    out += ["", f"## Top {len(p['top_ops'])} ops by self CPU time", "",
            "| op | category | calls/step | self CPU ms/step | share | total CPU ms/step |"
            + (" self device ms/step |" if dev else "") + " GFLOP/step | GFLOP/s |",
            "|---|---|---:|---:|---:|---:|" + ("---:|" if dev else "") + "---:|---:|"]
    for r in p["top_ops"]:
        row = [f"`{r['name']}`", r["category"], _f(r["calls"]), _f(r["self_cpu_ms"], ".4g"), _pct(r["share"]),
               _f(r["total_cpu_ms"], ".4g")]
        if dev:
            row.append(_f(r.get("self_device_ms"), ".4g"))
        row += [_f(r["flops"] / 1e9 if r["flops"] else None, ".4g"), _f(r["gflops"])]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return "\n".join(out)


def _default_out(args: argparse.Namespace) -> Path:
    parts = [host_tag(args.device)]
    if args.config:
        parts.append(re.sub(r"[^A-Za-z0-9._-]+", "-", args.config))
    parts += [flag for flag in ("channels_last", "amp", "compile", "generation") if getattr(args, flag)]
    if args.quick:
        parts.append("quick")
    return RESULTS / f"profile_{args.family}_{'-'.join(parts)}.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the command line, build the family's step, profile it and write the JSON and markdown files."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.profile_step", description=__doc__.split("\n\n")[0],
                                epilog="Other options are passed to the family's benchmark script.")
    p.add_argument("--family", required=True, choices=sorted(FAMILY_SCRIPTS))
    p.add_argument("--config", default=None, help="reference key (bench/references.py) or record name; default: the "
                   "family's first configuration")
    p.add_argument("--steps", type=int, default=3, help="profiled steps (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up steps before anything is timed (default 1)")
    p.add_argument("--plain_steps", type=int, default=1,
                   help="steps timed without the profiler, after warm-up (default 1; 0: none)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--quick", action="store_true", help="the benchmark's tiny smoke configuration")
    p.add_argument("--no_flops", action="store_true", help="skip the FlopCounterMode step")
    p.add_argument("--generation", action="store_true", help="profile the benchmark's generation call (its "
                   "generation batch) instead of a training step; 'steps' are then generation calls")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/profile_<family>_<tag>.json); the "
                   "markdown goes next to it (.md)")
    args, bench_extra = p.parse_known_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.plain_steps < 0:
        raise SystemExit("--steps must be >= 1, --warmup and --plain_steps >= 0.")
    if args.config in REFERENCES and REFERENCES[args.config]["family"] != args.family:
        raise SystemExit(f"--config {args.config} is a {REFERENCES[args.config]['family']} reference, not "
                         f"{args.family}.")
    bench_argv = ["--only", args.family, "--device", args.device, "--threads", str(args.threads),
                  "--warmup", str(args.warmup), "--repeats", str(args.plain_steps + args.steps)]
    bench_argv += [f"--{flag}" for flag in ("quick", "channels_last", "amp", "compile") if getattr(args, flag)]
    if not args.quick:
        from bench.run_all import FULL_ARGS

        bench_argv += FULL_ARGS.get(FAMILY_SCRIPTS[args.family], [])
    bench_argv += bench_extra

    threads = torch.get_num_threads()
    try:
        target = build_step(args.family, args.config, bench_argv, generation=args.generation)
        settings = {"warmup": args.warmup, "steps": args.steps, "plain_steps": args.plain_steps,
                    "threads": torch.get_num_threads(), "device": args.device, "quick": args.quick,
                    "channels_last": args.channels_last, "amp": bool(target.args and target.args.amp),
                    "compile": args.compile, "bench_script": f"bench/bench_{FAMILY_SCRIPTS[args.family]}.py",
                    "bench_argv": bench_argv, "step": "generation" if args.generation else target.kind,
                    "gen_batch": target.gen_batch}
        prof = profile_target(target, warmup=args.warmup, steps=args.steps, plain_steps=args.plain_steps,
                              device=args.device, count_flops=not args.no_flops)
    finally:
        torch.set_num_threads(threads)
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "step_profile",
        "family": target.family,
        "name": target.name,
        "label": target.label,
        "quick": args.quick,
        "config_requested": args.config,
        "config": target.config,
        "reference": reference(target.reference_key),
        "machine": target.machine,
        "settings": settings,
        "profile": prof,
        "command": "python -m bench.profile_step " + " ".join(argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out) if args.out else _default_out(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    md = out.with_suffix(".md")
    md.write_text(markdown(result))
    unit = "s per generation call" if args.generation else "s/step"
    print(f"{result['family']} {result['name']}: {prof['step_s']:.4g} {unit} profiled, "
          f"{_f(prof['step_s_plain'], '.4g')} s without the profiler"
          + (f" (batch {target.gen_batch}: {target.gen_batch / prof['step_s_plain']:.4g} img/s)"
             if args.generation and target.gen_batch and prof.get('step_s_plain') else ""), flush=True)
    for c in prof["categories"]:
        if c["self_cpu_ms"]:
            print(f"  {c['category']:>24}: {_pct(c['share']):>6}  {_f(c['gflops'])} GFLOP/s", flush=True)
    print(f"wrote {out}\nwrote {md}", flush=True)
    return result


if __name__ == "__main__":
    main()
