# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""monai_gan_aug: MONAI-native GAN-based augmentation for small medical imaging datasets."""

from __future__ import annotations

from monai_gan_aug.utils.errors import install_excepthook as _install_excepthook
from monai_gan_aug.utils.version import __version__

# every bundle config imports this package: its errors must be the last lines of a failed `monai.bundle run`
_install_excepthook()

__all__ = ["__version__", "generate"]


def __getattr__(name: str):
    # lazy: monai_gan_aug.generate(...) needs the engines (torch, MONAI), which `import monai_gan_aug` does not load
    if name == "generate":
        from monai_gan_aug.engines.bundles import generate

        # importing monai_gan_aug.generate (the command-line module) would make the attribute that module: keep
        # the function
        globals()["generate"] = generate
        return generate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
