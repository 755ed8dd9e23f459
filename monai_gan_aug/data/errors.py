# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Exceptions raised by the data layer.

All of them subclass :class:`ValueError`, so code that already guards data loading with ``except ValueError``
keeps working, while callers that want to react to one specific problem can catch the narrower class.
"""

from __future__ import annotations

__all__ = ["DatalistError", "ImageReadError", "InvalidBoxesError"]


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded (corrupt, truncated, unsupported encoding).

    The message names the file, the problem and what to do about it.
    """


class DatalistError(ValueError):
    """A datalist (JSON / CSV / scanned folder) is malformed or refers to files that are missing or unpaired."""


class InvalidBoxesError(ValueError):
    """Bounding boxes are malformed (wrong length, ``x1 <= x0``) or lie outside their image."""
