# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The body shared by the report commands (``python -m monai_gan_aug.benefit``, ``... .realism``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["report_command"]

_Report = TypeVar("_Report")


def report_command(
    compute: Callable[[], _Report],
    error: type[Exception] | tuple[type[Exception], ...],
    markdown: Callable[[_Report], str],
    written: str,
) -> int:
    """Run ``compute()`` and print its report: the exit status of a command.

    Args:
        compute: builds the report.
        error: the exceptions that mean bad input: printed as ``error: <message>`` on stderr, exit status 2 (any other
            exception propagates).
        markdown: the report's table, printed after a blank line.
        written: the last line printed (where the report's files are).

    Returns:
        0, or 2 on ``error``.
    """
    try:
        report = compute()
    except error as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(markdown(report))
    print(written)
    return 0
