# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_gan_aug.utils import as_bool


@pytest.mark.parametrize("value", [True, 1, "true", "True", " YES ", "on", "1", np.bool_(True), torch.tensor(1)])
def test_truthy(value):
    assert as_bool(value) is True


@pytest.mark.parametrize("value", [False, 0, None, "false", "False", "no", "off", "0", "", np.bool_(False), torch.tensor(0)])
def test_falsy(value):
    assert as_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", 2, [], "flase"])
def test_bad_value_names_the_setting(value):
    with pytest.raises(ValueError, match=r"overwrite must be true or false"):
        as_bool(value, "overwrite")
