# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Data layer: DICOM reader for MONAI's LoadImage, datalists, the embedded demo dataset."""

from __future__ import annotations

from .collate import RAGGED_KEYS, gan_collate
from .datalist import (
    build_datalist_from_csv,
    build_datalist_from_folder,
    check_datalist,
    image_paths,
    load_datalist,
    screen_images,
    split_datalist,
)
from .errors import DatalistError, ImageReadError, InvalidBoxesError
from .items import seeded_items, select_keys
from .loader import fit_batch_size
from .loading import (
    BadImageError,
    LoadMedicalImage,
    LoadMedicalImageD,
    LoadMedicalImaged,
    LoadMedicalImageDict,
    image_problem,
)
from .mix import FolderSource, SyntheticMixDataset, SyntheticMixError, SyntheticSource
from .readers import DicomReader
from .same_class import REFERENCE_KEY, ReferenceSeedDataset, SameClassPairDataset
from .unpaired import load_unpaired_items, unpaired_items

__all__ = [
    "seeded_items",
    "select_keys",
    "DicomReader",
    "gan_collate",
    "RAGGED_KEYS",
    "LoadMedicalImage",
    "LoadMedicalImaged",
    "LoadMedicalImageD",
    "LoadMedicalImageDict",
    "build_datalist_from_folder",
    "build_datalist_from_csv",
    "load_datalist",
    "image_paths",
    "split_datalist",
    "check_datalist",
    "screen_images",
    "image_problem",
    "fit_batch_size",
    "BadImageError",
    "DatalistError",
    "ImageReadError",
    "InvalidBoxesError",
    "SyntheticSource",
    "FolderSource",
    "SyntheticMixDataset",
    "SyntheticMixError",
    "REFERENCE_KEY",
    "ReferenceSeedDataset",
    "SameClassPairDataset",
    "load_unpaired_items",
    "unpaired_items",
    "get_demo_datalist",
    "make_demo_dataset",
]


#: names that moved up a floor (issue 16): generation is an engine's job, an Ignite handler a handler's
_MOVED = {"GeneratorSource": "monai_gan_aug.engines", "SyntheticMixEpochHandler": "monai_gan_aug.handlers",
          "write_synthetic_set": "monai_gan_aug.handlers"}


def __getattr__(name):  # the demo module imports nilearn: load it only when asked for
    if name in ("get_demo_datalist", "make_demo_dataset"):
        from . import demo

        return getattr(demo, name)
    if name in _MOVED:
        raise AttributeError(f"monai_gan_aug.data.{name} moved to {_MOVED[name]}.{name} (the data floor does not "
                             "generate or handle engine events); import it from there.")
    raise AttributeError(name)
