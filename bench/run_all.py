# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Run every family benchmark, one subprocess per script (so the CPU peak-RSS figure is per family), collect their
records and write ``bench/results/summary_<tag>.json`` and ``bench/results/summary_<tag>.md`` (a table against the
references of issue #8).

    python -m bench.run_all [--quick] [--only dcgan,pix2pix] [--device cuda] [--amp] [--channels_last]

``--only`` takes benchmark family names (what a script's ``FAMILIES`` lists: ``dcgan``, ``wgan_gp``,
``monai_gantrainer``, ``pix2pix``, ``dfgan``, ``cyclegan``, ``ga_unet``, ``fastgan``, ``pggan``, ``alpha_wgan``), the
registered name of a family whose benchmark uses an alias (``pggan_bbox`` = ``pggan``), or script names
(``noise_gans`` = its three families). Without ``--quick`` the full sizes run: that takes hours on a 2-core CPU; run
it on an otherwise idle machine.

Which families exist comes from the family registry (:mod:`monai_gan_aug.engines.families`, discovered from the
bundles); which script covers a family from the scripts themselves: every ``bench/bench_<script>.py`` that declares
``FAMILIES = (...)`` (read with :mod:`ast`, nothing imported). A benchmark family must be a registered family (its
name or an alias) or a baseline of :data:`BASELINES`, else the run stops saying so. A registered family no script
covers is listed as "no benchmark" (printed, and under ``not_benchmarked`` in the summary files) rather than made an
error: benchmarks exist for the families with reference figures (issue #8), and a new family should not have to
edit the bench to be added; ``--only`` naming such a family stops with a message saying it has no benchmark.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"

#: Benchmark entries that are not families of this package: reference points timed next to them.
BASELINES: dict[str, str] = {
    "monai_gantrainer": "MONAI's own monai.engines.GanTrainer (model-zoo mednist_gan networks), the reference of issue #8",
}


def discover_scripts(bench_dir: Path = BENCH_DIR) -> dict[str, tuple[str, ...]]:
    """Script name (``bench/bench_<name>.py``, its result-file prefix) -> the benchmark families it declares in a
    module-level ``FAMILIES = (...)`` literal, read with :mod:`ast` (nothing is imported). Scripts without one
    (``bench_metrics``, ``bench_mix``) are not family benchmarks. Sorted by script name: the order of the runs."""
    scripts = {}
    for path in sorted(bench_dir.glob("bench_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILIES" for t in node.targets):
                families = ast.literal_eval(node.value)
                if not families or not all(isinstance(f, str) for f in families):
                    raise SystemExit(f"{path}: FAMILIES must be a non-empty tuple of family names, got {families!r}.")
                scripts[path.stem[len("bench_"):]] = tuple(families)
    return scripts


# script name (result file prefix) -> its families; the order is the order of the runs
SCRIPTS: dict[str, tuple[str, ...]] = discover_scripts()
# extra arguments of the full (not --quick) runs: PGGAN at the reference's network sizes and stages
FULL_ARGS: dict[str, list[str]] = {
    "pggan": ["--preset", "reference", "--resolutions", "32", "64", "--phases", "stable"],
}

__all__ = ["BASELINES", "SCRIPTS", "coverage", "discover_scripts", "main", "markdown_table", "not_benchmarked",
           "select"]


def coverage(scripts: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, str] | None]:
    """Registered family (:func:`monai_gan_aug.engines.families.families`) -> ``(script, benchmark family name)``,
    or ``None`` when no script benchmarks it. Stops (``SystemExit``) when a script's ``FAMILIES`` names something
    that is neither a registered family (name or alias) nor a :data:`BASELINES` entry, or when two benchmark names
    cover one family."""
    from monai_gan_aug.engines.families import families

    scripts = SCRIPTS if scripts is None else scripts
    registry = families()
    owner = {n: fam.name for fam in registry.values() for n in fam.names()}
    covered: dict[str, tuple[str, str] | None] = dict.fromkeys(registry)
    for script, names in scripts.items():
        for name in names:
            if name in BASELINES:
                continue
            if name not in owner:
                raise SystemExit(
                    f"bench/bench_{script}.py benchmarks {name!r}, which is neither a registered family (names and "
                    f"aliases: {', '.join(sorted(owner))}) nor a baseline of bench.run_all.BASELINES. Rename it to its "
                    "family's name, or add the baseline with the reason it is benchmarked."
                )
            fam = owner[name]
            if covered[fam] is not None:
                raise SystemExit(f"family {fam!r} is benchmarked twice: {covered[fam]} and {(script, name)}.")
            covered[fam] = (script, name)
    return covered


def not_benchmarked(scripts: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Registered families no benchmark script covers."""
    return [fam for fam, where in coverage(scripts).items() if where is None]


def select(only: str | None) -> dict[str, list[str]]:
    """Script -> families to run, from ``--only`` (family or script names, comma-separated; ``None``: all). A name
    that is both (``pix2pix``) means the family; a registered family name maps to its benchmark's name
    (``pggan_bbox`` -> ``pggan``); a registered family without a benchmark, or an unknown name, stops the run."""
    covered = coverage()
    if not only:
        return {s: list(f) for s, f in SCRIPTS.items()}
    chosen: dict[str, list[str]] = {}
    for name in (n.strip() for n in only.split(",") if n.strip()):
        owner = next((s for s, fams in SCRIPTS.items() if name in fams), None)  # family names first
        if owner is None and covered.get(name) is not None:  # a registered name whose benchmark uses an alias
            owner, name = covered[name]
        if owner is not None:
            families: Sequence[str] = (name,)
        elif name in SCRIPTS:
            owner, families = name, SCRIPTS[name]
        elif name in covered:
            raise SystemExit(f"--only: {name!r} is a registered family with no benchmark (no bench/bench_*.py lists it "
                             f"in FAMILIES); families without one: {', '.join(not_benchmarked())}")
        else:
            known = sorted({f for fams in SCRIPTS.values() for f in fams} | set(SCRIPTS))
            raise SystemExit(f"--only: unknown family {name!r}; known: {', '.join(known)}")
        listed = chosen.setdefault(owner, [])
        listed.extend(f for f in families if f not in listed)
    return {s: chosen[s] for s in SCRIPTS if s in chosen}  # keep the run order


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _met(flag: bool | None, comparable: bool | None) -> str:
    if not comparable:
        return "n/c"
    return "-" if flag is None else ("yes" if flag else "no")


def _share(util: Mapping[str, Any]) -> str:
    parts = [f"{100 * util[k]:.0f} %" if util.get(k) else "-" for k in ("of_bf16_matmul", "of_gpu_bf16_peak")]
    return " / ".join(parts)


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The summary table: one row per record, the reference's figures next to ours."""
    head = ["family", "config", "step s", "ref step s", "GFLOP/step", "ref GFLOP", "achieved GFLOP/s",
            "step ratio at equal FLOPs (target <= 0.8)", "gen img/s", "ref gen img/s", "gen ratio (target >= 1.25)",
            "peak memory", "matmul GFLOP/s", "share of bf16 matmul / GPU bf16 peak", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 12 + ["---"]) + "|"]
    for r in records:
        ref, ratios = r.get("reference") or {}, r.get("ratios") or {}
        mem = r.get("peak_memory") or {}
        kind = "CUDA" if mem.get("kind") == "cuda_max_memory_allocated" else "RSS"
        gen = _fmt(r.get("gen_images_per_s"))
        if r.get("gen_batch"):
            gen += f" (b{r['gen_batch']})"
        if ratios:
            met = (f"step {_met(ratios.get('step_target_met'), ratios.get('comparable'))}, "
                   f"gen {_met(ratios.get('gen_target_met'), ratios.get('gen_comparable'))}")
        else:
            met = "no reference"
        ref_label = ref.get("label")
        config = r.get("label", "") + (f" (ref: {ref_label})" if ref_label and not ratios.get("comparable") else "")
        row = [
            r.get("family", ""), config.replace("|", "/"), _fmt(r.get("step_s"), ".4g"), _fmt(ref.get("step_s")),
            _fmt(r.get("gflop_per_step"), ".4g"), _fmt(ref.get("gflop"), ".4g"), _fmt(r.get("achieved_gflops")),
            _fmt(ratios.get("step_ratio_equal_flops")), gen, _fmt(ref.get("gen_img_s")), _fmt(ratios.get("gen_ratio")),
            f"{_fmt(mem.get('mb'), '.0f')} MB {kind}", _fmt((r.get("machine") or {}).get("matmul_gflops"), ".0f"),
            _share(r.get("utilisation") or {}), met,
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _markdown(summary: Mapping[str, Any]) -> str:
    records = summary["records"]
    machines = {(m.get("hostname"), m.get("device"), m.get("gpu"), m.get("torch"), m.get("threads"))
                for m in (r.get("machine", {}) for r in records)}
    out = [f"# Benchmark summary `{summary['tag']}`", "",
           f"Created {summary['created']} by `{summary['command']}`.", ""]
    for host, device, gpu, torch_version, threads in sorted(machines, key=str):
        out.append(f"- machine: {host}, device {device}{f' ({gpu})' if gpu else ''}, torch {torch_version}, "
                   f"{threads} threads")
    out += [
        "- reference: issue #8 (2-core CPU, fp32, 2 threads, median of 7 steps after 2 warm-ups, matmul ~175 GFLOP/s)",
        "- step ratio at equal FLOPs = (step s / GFLOP) / (ref step s / ref GFLOP); gen ratio = gen img/s / ref gen "
        "img/s; the matmul column is this run's 2048^2 fp32 yardstick (matmul_scale = it / 175; the JSON also has "
        "both ratios normalised by it)",
        "- met?: n/c = not comparable (config or work per step differs from the reference's, see "
        "ratios.comparability_notes in the JSON); peak memory: process peak RSS on CPU (one process per script), "
        "torch.cuda.max_memory_allocated on CUDA",
    ]
    if summary.get("not_benchmarked"):
        out.append("- registered families with no benchmark (no bench/bench_*.py covers them): "
                   + ", ".join(summary["not_benchmarked"]))
    if summary.get("quick"):
        out.append("- **quick smoke run**: tiny sizes, one timed step; the figures are not comparable with the references")
    out += ["", markdown_table(records), ""]
    if summary.get("failures"):
        out += ["## Failures", ""] + [f"- `{f['script']}`: exit code {f['returncode']}" for f in summary["failures"]]
        out.append("")
    return "\n".join(out)


def _script_argv(args: argparse.Namespace, families: Iterable[str], script: str) -> list[str]:
    argv = ["--only", ",".join(families), "--results_dir", str(args.results_dir), "--tag", args.tag]
    for opt in ("device", "warmup", "repeats", "threads"):
        value = getattr(args, opt)
        if value is not None:
            argv += [f"--{opt}", str(value)]
    for flag in ("quick", "channels_last", "amp", "compile"):
        if getattr(args, flag):
            argv.append(f"--{flag}")
    if not args.quick:
        argv += FULL_ARGS.get(script, [])
    return argv


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.common import RESULTS, host_tag

    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="default 2")
    p.add_argument("--quick", action="store_true", help="tiny smoke configurations, 1 timed step")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated families or scripts")
    p.add_argument("--results_dir", default=str(RESULTS))
    p.add_argument("--tag", default=None, help="default <hostname>-<device type>[-quick]")
    p.add_argument("--timeout", type=float, default=None, help="seconds per script")
    args = p.parse_args(argv)
    plan = select(args.only)
    missing = not_benchmarked()
    if missing:
        print(f"no benchmark: {', '.join(missing)} (registered families no bench/bench_*.py covers)", flush=True)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tag is None:
        args.tag = host_tag(args.device, args.quick)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)

    records: list[dict[str, Any]] = []
    runs, failures = [], []
    for script, families in plan.items():
        cmd = [sys.executable, "-m", f"bench.bench_{script}", *_script_argv(args, families, script)]
        print(f"\n=== {script}: {' '.join(cmd[1:])}", flush=True)
        path = results_dir / f"{script}_{args.tag}.json"
        t0 = time.time()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = -9
        seconds = time.time() - t0
        fresh = path.exists() and path.stat().st_mtime >= t0 - 1
        run = {"script": script, "families": families, "returncode": rc, "seconds": seconds,
               "result_file": str(path) if fresh else None}
        if rc == 0 and fresh:
            got = json.loads(path.read_text())
            records.extend(got)
            run["records"] = len(got)
        else:
            failures.append({"script": script, "returncode": rc,
                             "reason": "timed out" if rc == -9 else ("no result file" if rc == 0 else "failed")})
        runs.append(run)

    summary = {
        "schema_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": "python -m bench.run_all " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tag": args.tag,
        "quick": args.quick,
        "runs": runs,
        "not_benchmarked": missing,
        "failures": failures,
        "records": records,
    }
    json_path = results_dir / f"summary_{args.tag}.json"
    json_path.write_text(json.dumps(summary, indent=1, default=str))
    md_path = results_dir / f"summary_{args.tag}.md"
    md_path.write_text(_markdown(summary))
    print(f"\nwrote {json_path}\nwrote {md_path}", flush=True)
    if failures:
        print("failed: " + ", ".join(f"{f['script']} ({f['reason']})" for f in failures), file=sys.stderr)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
