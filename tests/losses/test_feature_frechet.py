# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""FeatureFrechetLoss (DF-GAN's training-time Frechet term): the distance to fixed real statistics equals the metric's,
its gradient reaches the images, the feature memory, the real-statistics pass keeps the random streams, and the
state round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from monai_gan_aug.losses.feature_frechet import FeatureFrechetLoss
from monai_gan_aug.metrics.extractors import RandomConvFeatures
from monai_gan_aug.metrics.frechet import frechet_distance_from_features


def _extractor():
    return RandomConvFeatures(in_channels=1, dim=8, seed=3, width=4, depth=2)


def _images(n, seed):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_distance_matches_the_metric_and_differentiates_into_the_images():
    loss = FeatureFrechetLoss(_extractor())
    reals = _images(32, 0)
    loss.set_real_statistics(reals)
    assert loss.has_real_statistics and loss.real_mu.dtype == torch.float64
    assert not any(p.requires_grad for p in loss.extractor.parameters()) and not loss.extractor.training
    fakes = _images(16, 1).requires_grad_(True)
    value = loss(fakes)
    expected = frechet_distance_from_features(loss.extractor.extract(reals), loss.extractor.extract(fakes.detach()))
    assert float(value) == pytest.approx(expected, rel=1e-4)
    value.backward()
    assert fakes.grad is not None and fakes.grad.abs().sum() > 0


def test_memory_keeps_the_newest_vectors_and_survives_the_state_round_trip():
    loss = FeatureFrechetLoss(_extractor(), memory=3)
    loss.set_real_statistics({"mu": torch.zeros(8), "sigma": torch.eye(8)})
    assert float(loss(_images(1, 1))) == 0.0  # one vector known: no term yet
    assert loss.memory.shape == (1, 8)
    loss(_images(2, 2))
    loss(_images(1, 3))
    assert loss.memory.shape == (3, 8)
    torch.testing.assert_close(loss.memory[0], loss.extractor(_images(1, 3))[0])
    restored = FeatureFrechetLoss(_extractor(), memory=3)
    restored.load_state_dict(loss.state_dict())
    torch.testing.assert_close(restored(_images(2, 4)), loss(_images(2, 4)))
    torch.testing.assert_close(restored.memory, loss.memory)


def test_real_statistics_pass_keeps_the_random_streams():
    loss = FeatureFrechetLoss(_extractor())
    loader = [{"img": _images(2, i)} for i in range(3)]
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    stats = loss.compute_real_statistics(loader, image_key="img", max_batches=2)
    assert stats.n == 4
    assert torch.equal(states[0], torch.get_rng_state()) and states[1] == random.getstate()
    assert np.array_equal(states[2], np.random.get_state()[1])


def test_errors_name_the_owner():
    with pytest.raises(ValueError, match="Owner: fid_memory"):
        FeatureFrechetLoss(_extractor(), memory=-1, name="Owner")
    with pytest.raises(TypeError, match="extractor"):
        FeatureFrechetLoss(lambda x: x)  # type: ignore[arg-type]
    loss = FeatureFrechetLoss(_extractor(), name="Owner")
    with pytest.raises(ValueError, match="Owner: no real statistics"):
        loss(_images(2, 0))
    with pytest.raises(ValueError, match="'image'"):
        loss.compute_real_statistics([{"label": _images(2, 0)}])
    loss.set_real_statistics(_images(4, 0))
    with pytest.raises(ValueError, match="fid_memory"):
        loss(_images(1, 0))
