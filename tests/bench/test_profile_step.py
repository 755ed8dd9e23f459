# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The step profiler (``bench/profile_step.py``): a ``--quick`` DCGAN profile run in this process into a temporary
folder, its JSON schema, the categories' shares and the op categories. No timing values are checked (only that
they are positive)."""

from __future__ import annotations

import json

import pytest
import torch

from bench.profile_step import CATEGORIES, FAMILY_SCRIPTS, SCHEMA_VERSION, TOP_OPS, main, op_category


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory):
    """``python -m bench.profile_step --family dcgan --quick`` on CPU with 1 thread; (result, JSON path)."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("profile") / "profile_dcgan_test.json"
    try:
        result = main(["--family", "dcgan", "--quick", "--device", "cpu", "--threads", "1", "--steps", "2",
                       "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return result, out


def test_profile_schema(quick_profile):
    result, path = quick_profile
    assert path.exists() and path.with_suffix(".md").exists()
    written = json.loads(path.read_text())
    assert written["schema_version"] == SCHEMA_VERSION and written["kind"] == "step_profile"
    assert written["family"] == "dcgan" and written["quick"] is True and written["name"] == result["name"]
    assert written["reference"]["key"] == "dcgan_64_b16"
    assert written["config"]["batch"] > 0 and written["config"]["resolution"] > 0
    m = written["machine"]
    assert m["device"] == "cpu" and m["threads"] == 1 and m["matmul_gflops"] > 0
    s = written["settings"]
    assert (s["steps"], s["warmup"], s["plain_steps"], s["step"]) == (2, 1, 1, "engine")
    p = written["profile"]
    assert p["activities"] == ["CPU"]
    assert len(p["step_s_all"]) == 2 and all(t > 0 for t in p["step_s_all"])
    assert p["step_s"] == pytest.approx(p["profiled_s"] / 2) and p["step_s_plain"] > 0
    assert p["gflop_per_step"] > 0 and p["flops_by_op"]
    assert 0 < len(p["top_ops"]) <= TOP_OPS
    selfs = [r["self_cpu_ms"] for r in p["top_ops"]]
    assert selfs == sorted(selfs, reverse=True)
    for r in p["top_ops"]:
        assert {"name", "category", "calls", "self_cpu_ms", "share", "total_cpu_ms", "flops", "gflops"} <= set(r)
        assert r["category"] in CATEGORIES and r["calls"] > 0
        if r["gflops"] is not None:
            assert r["flops"] > 0
    assert [c["category"] for c in p["categories"]] == list(CATEGORIES)
    text = path.with_suffix(".md").read_text()
    assert "## Categories" in text and "## Top" in text and "convolution bwd" in text


def test_profile_category_shares(quick_profile):
    p = quick_profile[0]["profile"]
    total = sum(c["share"] for c in p["categories"])
    assert abs(total - p["total_self_cpu_share"]) < 0.05
    assert p["total_self_cpu_share"] + p["unattributed_share"] == pytest.approx(1.0)
    assert 0 < total < 1.05
    by_name = {c["category"]: c for c in p["categories"]}
    for conv in ("convolution fwd", "convolution bwd"):
        assert by_name[conv]["self_cpu_ms"] > 0 and by_name[conv]["top_ops"]
        assert by_name[conv]["gflop_per_step"] > 0 and by_name[conv]["gflops"] > 0
    assert by_name["optimizer"]["self_cpu_ms"] > 0  # Adam steps, found through the Optimizer.step annotation
    conv_ops = {r["name"] for r in p["flop_ops"] if r["flops_source"] == "FlopCounterMode"}
    assert {"aten::convolution", "aten::convolution_backward"} <= conv_ops


@pytest.mark.parametrize(("name", "category"), [
    ("aten::conv2d", "convolution fwd"),
    ("aten::mkldnn_convolution", "convolution fwd"),
    ("aten::slow_conv_transpose2d", "convolution fwd"),
    ("aten::convolution_backward", "convolution bwd"),
    ("aten::addmm", "matmul/linear"),
    ("aten::mm", "matmul/linear"),
    ("aten::native_batch_norm_backward", "batch/instance norm"),
    ("aten::instance_norm", "batch/instance norm"),
    ("aten::leaky_relu_", "elementwise/activation"),
    ("aten::threshold_backward", "elementwise/activation"),
    ("aten::mse_loss", "elementwise/activation"),
    ("aten::copy_", "memory/copy/layout"),
    ("aten::contiguous", "memory/copy/layout"),
    ("aten::to", "memory/copy/layout"),
    ("aten::_to_copy", "memory/copy/layout"),
    ("aten::cat", "memory/copy/layout"),
    ("aten::reflection_pad2d", "memory/copy/layout"),
    ("Optimizer.step#Adam.step", "optimizer"),
    ("aten::_foreach_add_", "optimizer"),
    ("ConvolutionBackward0", "autograd other"),
    ("autograd::engine::evaluate_function: MmBackward0", "autograd other"),
    ("torch::autograd::AccumulateGrad", "autograd other"),
    ("aten::randn", "other"),
])
def test_op_category(name, category):
    assert op_category(name) == category


def test_unknown_config_is_refused():
    assert {"dcgan", "pix2pix", "cyclegan", "fastgan", "pggan", "alpha_wgan"} <= set(FAMILY_SCRIPTS)
    with pytest.raises(SystemExit):
        main(["--family", "dcgan", "--config", "pix2pix_256_b1", "--quick", "--device", "cpu"])


def test_generation_profile(tmp_path):
    """``--generation`` profiles the benchmark's generation call: forward convolutions only, no backward, no
    optimizer, and the generation batch is recorded."""
    threads = torch.get_num_threads()
    out = tmp_path / "profile_dcgan_generation.json"
    try:
        result = main(["--family", "dcgan", "--quick", "--device", "cpu", "--threads", "1", "--steps", "2",
                       "--generation", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert result["settings"]["step"] == "generation" and result["settings"]["gen_batch"] == 8
    cats = {c["category"]: c for c in result["profile"]["categories"]}
    assert cats["convolution fwd"]["self_cpu_ms"] > 0
    assert cats["convolution bwd"]["self_cpu_ms"] == 0 and cats["optimizer"]["self_cpu_ms"] == 0
    assert result["profile"]["gflop_per_step"] > 0
    assert json.loads(out.read_text())["settings"]["step"] == "generation"
