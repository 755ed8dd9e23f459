# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Install script for monai_gan_aug, a MONAI plugin for GAN-based augmentation of small medical datasets."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

CORE = [
    # torch and torchvision are pinned as a pair: ultralytics needs torchvision, and PyPI's torchvision wheels
    # only load with the torch build they were compiled against (the CUDA build, which also runs on CPU).
    "torch==2.15.0",
    "torchvision==0.29.2",
    # MONAI's bundle/engine/handler APIs used by the configs (ConfigWorkflow, Trainer, CheckpointSaver ids) are
    # those of 1.6; older releases name some of them differently.
    "monai>=1.6.1,<1.7",
    "pytorch-ignite>=0.5.5,<0.6",
    "numpy>=1.24",
    "scipy>=1.10",
    "nibabel>=5.0",
    "itk>=5.4",
    # pydicom 3 is the core reader; MONAI Label needs pydicom<3 and lives in its own extra / environment.
    "pydicom>=3.0",
    "pylibjpeg>=2.0",
    "pylibjpeg-libjpeg>=2.1",
    "pylibjpeg-openjpeg>=2.3",
    "pylibjpeg-rle>=2.0",
    "pyjpegls>=1.2",
    "pillow>=10",
    "tqdm>=4.60",
    "tensorboard>=2.14",
    "scikit-learn>=1.3",
    "scikit-image>=0.22",
    "nilearn>=0.10",  # ships the MNI152 template inside its wheel: the base of the embedded demo dataset
    "ultralytics>=8.4.190",  # its warm-up takes fractional epochs without a 100-batch minimum (benefit steps)
    "pyyaml>=6.0",
    "fire>=0.5",  # python -m monai.bundle command-line parsing
    "jsonschema>=4.0",  # monai.bundle verify_metadata
]

EXTRAS = {
    "dev": ["pytest>=7.4", "pytest-timeout>=2.2", "pydicom-data>=1.0", "ruff>=0.5"],
    # MONAI Label 0.8.5 needs pydicom<3 and numpy<2 (pydicom-seg) and declares sam2, which builds a second torch
    # from source: it cannot share this environment. `make label-env` builds .venv-label from
    # requirements-label.txt (pins and reasons there); see docs/monai_label.md.
}

setup(
    name="monai_gan_aug",
    version="0.1.0",
    description="MONAI-native GAN-based augmentation for small medical imaging datasets",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["monai_gan_aug", "monai_gan_aug.*"]),
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["monai-gan-aug=monai_gan_aug.__main__:main"]},
)
