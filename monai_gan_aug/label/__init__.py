# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label integration: the app (:mod:`monai_gan_aug.label.server`, started from ``monai_gan_aug/label/app``),
its tasks (:mod:`monai_gan_aug.label.tasks`) and the wire format of generation results
(:mod:`monai_gan_aug.label.codec`).

``server`` and ``tasks`` need MONAI Label, which lives in its own environment (``.venv-label``, see
``docs/monai_label.md``); ``codec`` needs only numpy and nibabel. Nothing is imported here, so importing this
package never requires MONAI Label.
"""

from __future__ import annotations

__all__: list[str] = []
