# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the evaluation command lines' shared argument parsers (monai_gan_aug.evaluation.cli)."""

from __future__ import annotations

import argparse

import pytest

from monai_gan_aug.evaluation import classification, detection, segmentation
from monai_gan_aug.evaluation.cli import bool_list, float_list, int_list, json_dict, parse_synthetic_args


def test_list_parsers():
    assert int_list("0,1, 2,") == [0, 1, 2]
    assert float_list("0,0.5,1e-1") == [0.0, 0.5, 0.1]
    assert bool_list("0,1,False,TRUE, no,yes") == [False, True, False, True, False, True]
    assert int_list("") == [] and float_list(" , ") == []
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated integers, got '1,x'"):
        int_list("1,x")
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
        float_list("0.5,half")
    with pytest.raises(argparse.ArgumentTypeError, match="0/1"):
        bool_list("0,maybe")


def test_json_dict():
    assert json_dict('{"channels": [8, 16], "strides": [2]}') == {"channels": [8, 16], "strides": [2]}
    with pytest.raises(argparse.ArgumentTypeError, match="JSON object"):
        json_dict("[1, 2]")
    with pytest.raises(argparse.ArgumentTypeError, match="JSON object"):
        json_dict("{channels: 8}")


def test_parse_synthetic_args():
    assert parse_synthetic_args([]) is None
    assert parse_synthetic_args(["runs/a"]) == "runs/a"
    assert parse_synthetic_args(["runs/a", "runs/b"]) == ["runs/a", "runs/b"]
    assert parse_synthetic_args(["ours=runs/a", "wgan=runs/b=c"]) == {"ours": "runs/a", "wgan": "runs/b=c"}
    with pytest.raises(argparse.ArgumentTypeError, match="not both"):
        parse_synthetic_args(["ours=runs/a", "runs/b"])
    assert segmentation.parse_synthetic_args is parse_synthetic_args  # still importable where it was


@pytest.mark.parametrize("module", [segmentation, classification, detection])
def test_command_lines_report_bad_lists(module, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--out", "unused", "--seeds", "0,one"])
    assert e.value.code == 2
    assert "--seeds: expected comma-separated integers, got '0,one'" in capsys.readouterr().err
