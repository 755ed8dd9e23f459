# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The benchmarks' result records: one family's ``--quick`` run in-process into a temporary results folder, the
record schema, the ratio arithmetic against the issue's references, ``run_all``'s selection and summary table.
Timing values are not checked (only that they are positive)."""

from __future__ import annotations

import importlib
import json
import statistics

import pytest
import torch

from bench.common import RECORD_KEYS, SCHEMA_VERSION, compute_ratios, write_result
from bench.references import REFERENCE_MATMUL_GFLOPS, REFERENCES, TARGETS
from bench.run_all import BASELINES, SCRIPTS, coverage, discover_scripts, markdown_table, not_benchmarked, select


@pytest.fixture(scope="module")
def quick_dcgan(tmp_path_factory):
    """``python -m bench.bench_noise_gans --quick --only dcgan`` run in this process; (records, written file)."""
    from bench import bench_noise_gans

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("results")
    try:
        records = bench_noise_gans.main(["--quick", "--only", "dcgan", "--device", "cpu", "--threads", "1",
                                         "--results_dir", str(out), "--tag", "test"])
    finally:
        torch.set_num_threads(threads)
    return records, out / "noise_gans_test.json"


def test_quick_record_schema(quick_dcgan):
    records, path = quick_dcgan
    assert path.exists()
    written = json.loads(path.read_text())
    assert isinstance(written, list) and len(written) == len(records) == 1
    r = written[0]
    assert tuple(r) == RECORD_KEYS
    assert r["schema_version"] == SCHEMA_VERSION and r["family"] == "dcgan" and r["quick"] is True
    assert r["config"]["batch"] > 0 and r["config"]["resolution"] > 0
    assert {"channels_last", "amp", "compile", "dtype"} <= set(r["config"])
    m = r["machine"]
    assert m["device"] == "cpu" and m["threads"] == 1 and m["torch"] == torch.__version__
    assert m["matmul_gflops"] > 0 and m["matmul_scale"] == pytest.approx(m["matmul_gflops"] / REFERENCE_MATMUL_GFLOPS)
    assert len(r["step_s_all"]) == 1 and r["step_s"] == statistics.median(r["step_s_all"]) > 0
    assert r["gflop_per_step"] > 0
    assert r["achieved_gflops"] == pytest.approx(r["gflop_per_step"] / r["step_s"])
    assert r["gen_images_per_s"] > 0 and isinstance(r["gen_batch"], int) and len(r["gen_s_all"]) == 1
    assert r["gen_images_per_s"] == pytest.approx(r["gen_batch"] / r["gen_s_all"][0])
    assert r["peak_memory"]["kind"] == "process_peak_rss" and r["peak_memory"]["mb"] > 0


def test_quick_record_ratios(quick_dcgan):
    r = quick_dcgan[0][0]
    ref = r["reference"]
    assert ref["key"] == "dcgan_64_b16"
    assert {k: v for k, v in ref.items() if k != "key"} == REFERENCES["dcgan_64_b16"]
    q = r["ratios"]
    step_ratio = (r["step_s"] / r["gflop_per_step"]) / (ref["step_s"] / ref["gflop"])
    assert q["step_ratio_equal_flops"] == pytest.approx(step_ratio)
    assert q["gen_ratio"] == pytest.approx(r["gen_images_per_s"] / ref["gen_img_s"])
    assert q["flop_ratio"] == pytest.approx(r["gflop_per_step"] / ref["gflop"])
    scale = r["machine"]["matmul_gflops"] / REFERENCE_MATMUL_GFLOPS
    assert q["matmul_scale"] == pytest.approx(scale)
    assert q["step_ratio_equal_flops_normalised"] == pytest.approx(step_ratio * scale)
    assert q["gen_ratio_normalised"] == pytest.approx(q["gen_ratio"] / scale)
    # the quick configuration is not the reference's: ratios are given, targets are not judged
    assert q["comparable"] is False and q["gen_comparable"] is False
    assert any("resolution" in n for n in q["comparability_notes"])
    assert q["step_target_met"] is None and q["gen_target_met"] is None


def test_ratio_arithmetic():
    ref = {"step_s": 2.0, "gflop": 100.0, "gen_img_s": 20.0, "gen_batch": None, "config": {"resolution": 64}}
    config = {"resolution": 64, "batch": 16}
    # half the seconds per GFLOP, 1.5x the images/s, on a machine with twice the reference's matmul rate
    q = compute_ratios(1.5, 150.0, 30.0, ref, 2 * REFERENCE_MATMUL_GFLOPS, config, gen_batch=8)
    assert q["step_ratio_equal_flops"] == pytest.approx(0.5)
    assert q["gen_ratio"] == pytest.approx(1.5)
    assert q["flop_ratio"] == pytest.approx(1.5)
    assert q["matmul_scale"] == pytest.approx(2.0)
    assert q["step_ratio_equal_flops_normalised"] == pytest.approx(1.0)
    assert q["gen_ratio_normalised"] == pytest.approx(0.75)
    assert q["comparable"] and q["gen_comparable"] and q["comparability_notes"] == []
    assert q["step_target_met"] is True and q["gen_target_met"] is True
    assert q["step_target_met_normalised"] is False and q["gen_target_met_normalised"] is False
    assert TARGETS == {"step_ratio_equal_flops_max": 0.8, "gen_ratio_min": 1.25}
    # at the bounds: 0.8 and 1.25 meet the targets
    q = compute_ratios(0.8, 100.0, 25.0, ref, None, config)
    assert q["step_target_met"] is True and q["gen_target_met"] is True and q["matmul_scale"] is None
    assert q["step_ratio_equal_flops_normalised"] is None
    # a different config, or a stated generation batch that differs, or 3x the work: not comparable
    q = compute_ratios(1.5, 150.0, 30.0, ref, None, {"resolution": 32})
    assert not q["comparable"] and q["step_target_met"] is None and q["step_ratio_equal_flops"] == pytest.approx(0.5)
    q = compute_ratios(1.5, 150.0, 30.0, {**ref, "gen_batch": 32}, None, config, gen_batch=8)
    assert q["comparable"] and not q["gen_comparable"] and q["gen_target_met"] is None and q["step_target_met"]
    q = compute_ratios(4.5, 300.0, 30.0, ref, None, config)
    assert not q["comparable"] and q["flop_ratio"] == pytest.approx(3.0)
    # missing inputs give None, no reference gives no ratios
    q = compute_ratios(1.0, None, None, ref, None, config)
    assert q["step_ratio_equal_flops"] is None and q["gen_ratio"] is None and q["step_target_met"] is None
    assert compute_ratios(1.0, 1.0, 1.0, None, 100.0) is None


def test_references_complete():
    for key, ref in REFERENCES.items():
        assert {"family", "implementation", "label", "config", "step_s", "gflop", "gen_img_s", "gen_batch"} <= set(ref)
        assert ref["step_s"] > 0 and ref["gflop"] > 0 and ref["gen_img_s"] > 0, key
        assert any(ref["family"] in fams for fams in SCRIPTS.values()), key
    # every reference is of a registered family (by its benchmark name) or of a baseline
    named = {where[1] for where in coverage().values() if where} | set(BASELINES)
    assert {ref["family"] for ref in REFERENCES.values()} <= named


def test_run_all_selection_matches_scripts():
    for script, families in SCRIPTS.items():
        module = importlib.import_module(f"bench.bench_{script}")
        assert module.NAME == script and tuple(module.FAMILIES) == families
    assert select(None) == {s: list(f) for s, f in SCRIPTS.items()}
    assert select("pix2pix,dcgan,noise_gans") == {"noise_gans": ["dcgan", "wgan_gp", "monai_gantrainer"],
                                                  "pix2pix": ["pix2pix"]}
    with pytest.raises(SystemExit):
        select("stylegan")


def test_scripts_and_families_come_from_the_scripts_and_the_registry(tmp_path):
    """SCRIPTS is read from the scripts' FAMILIES; every benchmark name is a registered family (name or alias) or a
    baseline; registered families without a benchmark are listed, and ``--only`` refuses them by name."""
    from monai_gan_aug.engines.families import families

    registry = families()
    assert {"noise_gans", "pix2pix", "pggan"} <= set(SCRIPTS) and not {"metrics", "mix"} & set(SCRIPTS)
    covered = coverage()
    assert set(covered) == set(registry)
    assert covered["pggan_bbox"] == ("pggan", "pggan") and covered["dcgan"] == ("noise_gans", "dcgan")
    missing = not_benchmarked()
    assert missing == [f for f, where in covered.items() if where is None] and "lesion_inpaint" in missing
    benchmarked = {name for fams in SCRIPTS.values() for name in fams}
    assert benchmarked == {where[1] for where in covered.values() if where} | set(BASELINES)
    # a registered name maps to its benchmark's name; a family without a benchmark is refused by name
    assert select("pggan_bbox,alpha_wgan_gp") == {"alpha_wgan": ["alpha_wgan"], "pggan": ["pggan"]}
    with pytest.raises(SystemExit, match="lesion_inpaint.*no benchmark"):
        select("lesion_inpaint")
    # a script that benchmarks an unregistered name, or one family twice, stops the run
    with pytest.raises(SystemExit, match="stylegan.*neither a registered family"):
        coverage({**SCRIPTS, "stylegan": ("stylegan",)})
    with pytest.raises(SystemExit, match="benchmarked twice"):
        coverage({**SCRIPTS, "pggan_again": ("pggan_bbox",)})
    # discovery reads FAMILIES literals only
    (tmp_path / "bench_a.py").write_text("NAME = 'a'\nFAMILIES = ('dcgan', 'wgan_gp')\n")
    (tmp_path / "bench_tool.py").write_text("def run():\n    FAMILIES = ('x',)\n")
    (tmp_path / "helper.py").write_text("FAMILIES = ('y',)\n")
    assert discover_scripts(tmp_path) == {"a": ("dcgan", "wgan_gp")}


def test_summary_lists_families_without_a_benchmark(tmp_path, monkeypatch):
    """``run_all`` with nothing selected to run still writes the summary, naming the registered families that no
    script covers."""
    from bench import run_all

    monkeypatch.setattr(run_all, "select", lambda only: {})
    summary = run_all.main(["--device", "cpu", "--results_dir", str(tmp_path), "--tag", "t"])
    assert summary["not_benchmarked"] == not_benchmarked() and summary["records"] == []
    text = (tmp_path / "summary_t.md").read_text()
    assert "no benchmark" in text and all(f in text for f in summary["not_benchmarked"])


def test_summary_table(quick_dcgan):
    table = markdown_table(quick_dcgan[0])
    lines = table.splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[2].count("|") == 16
    assert "dcgan" in lines[2] and "n/c" in lines[2] and "598" in lines[2]


def test_write_result_keeps_other_layouts(tmp_path):
    legacy = tmp_path / "pix2pix_vm.json"
    legacy.write_text(json.dumps({"machine": {}, "results": {}}))
    with pytest.raises(FileExistsError):
        write_result("pix2pix", [], tmp_path, "vm")
    assert json.loads(legacy.read_text()) == {"machine": {}, "results": {}}
    assert json.loads(write_result("pix2pix", [], tmp_path, "new").read_text()) == []


def test_utilisation_against_yardsticks_and_gpu_peak():
    from bench.common import gpu_bf16_peak_gflops, utilisation

    assert gpu_bf16_peak_gflops("NVIDIA H100 80GB HBM3") == 989_400.0
    assert gpu_bf16_peak_gflops("NVIDIA H100 PCIe") == 756_000.0
    assert gpu_bf16_peak_gflops("NVIDIA H200") == 989_400.0
    assert gpu_bf16_peak_gflops("Some CPU") is None and gpu_bf16_peak_gflops(None) is None
    gpu = {"matmul_gflops": 50_000.0, "matmul_bf16_gflops": 600_000.0, "gpu_bf16_peak_gflops": 989_400.0}
    u = utilisation(296_820.0, gpu, {"amp": True})
    assert u["of_gpu_bf16_peak"] == pytest.approx(0.3) and u["of_bf16_matmul"] == pytest.approx(0.4947)
    fp32 = utilisation(296_820.0, gpu, {"amp": False})  # bf16 shares only for bf16 runs
    assert fp32["of_gpu_bf16_peak"] is None and fp32["of_bf16_matmul"] is None
    assert fp32["of_fp32_matmul"] == pytest.approx(5.9364)
    assert utilisation(None, gpu, {"amp": True})["of_gpu_bf16_peak"] is None


def test_summary_shows_bf16_share():
    rec = {"family": "dcgan", "label": "x", "step_s": 1.0, "gflop_per_step": 10.0, "achieved_gflops": 10.0,
           "peak_memory": {"mb": 1, "kind": "rss"}, "machine": {"matmul_gflops": 100.0},
           "utilisation": {"of_bf16_matmul": 0.25, "of_gpu_bf16_peak": 0.125}}
    row = markdown_table([rec]).splitlines()[2]
    assert "25 % / 12 %" in row or "25 % / 13 %" in row
