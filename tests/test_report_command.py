# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""utils.cli.report_command: the body of the benefit / realism commands."""

from __future__ import annotations

import pytest

from monai_gan_aug.utils.cli import report_command


class _BadInput(ValueError):
    pass


def test_report_printed_and_zero(capsys):
    assert report_command(lambda: {"x": 1}, _BadInput, lambda r: f"table {r['x']}", "Report: here") == 0
    assert capsys.readouterr().out == "\ntable 1\nReport: here\n"


def test_expected_error_is_exit_two(capsys):
    def fail():
        raise _BadInput("no data")

    assert report_command(fail, _BadInput, str, "Report: here") == 2
    out = capsys.readouterr()
    assert out.err == "error: no data\n" and out.out == ""


def test_other_errors_propagate():
    def fail():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        report_command(fail, _BadInput, str, "Report: here")
