# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Feature extractors: conventions, offline Inception loading, MONAI networks, per-plane 3D features."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import resnet10
from torch import nn

from monai_gan_aug.metrics.extractors import (
    INCEPTION_ENV_VAR,
    InceptionV3Features,
    MonaiNetworkFeatures,
    PerPlaneFeatures,
    RandomConvFeatures,
    find_inception_weights,
    to_channels,
)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache without weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.delenv(INCEPTION_ENV_VAR, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    """Randomly initialised Inception-v3 state dicts in both supported layouts (never downloaded)."""
    from torchvision.models import inception_v3

    d = tmp_path_factory.mktemp("inception")
    tv = d / "inception_v3_google-0cc3c7bd.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), tv)
    fid = d / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict(), fid)
    return tv, fid


def _images(n=2, c=1, size=(32, 32)):
    return torch.rand(n, c, *size) * 2 - 1


def test_random_conv_features_are_deterministic_and_seeded():
    a, b, c = RandomConvFeatures(dim=16, seed=1), RandomConvFeatures(dim=16, seed=1), RandomConvFeatures(dim=16, seed=2)
    x = _images(3, 1, (40, 24))
    fa = a.extract(x)
    assert fa.shape == (3, 16) and a.feature_dim == 16
    assert torch.equal(fa, b.extract(x))
    assert not torch.allclose(fa, c.extract(x))
    assert a.name == b.name != c.name
    vol = RandomConvFeatures(dim=8, spatial_dims=3)
    assert vol(_images(2, 1, (16, 16, 16))).shape == (2, 8)


def test_channel_and_range_conventions():
    gray = _images(2, 1)
    rgb3 = RandomConvFeatures(in_channels=3, dim=8)
    # grayscale input is repeated to RGB: identical to feeding the 3-channel copy
    assert torch.allclose(rgb3(gray), rgb3(gray.repeat(1, 3, 1, 1)))
    luma = to_channels(torch.stack([torch.full((4, 4), v) for v in (1.0, 0.0, 0.0)])[None], 1)
    assert torch.allclose(luma, torch.full((1, 1, 4, 4), 0.299))
    net = RandomConvFeatures(dim=8)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        net(gray * 127.5 + 127.5)  # 8-bit range
    with pytest.raises(ValueError, match="channels"):
        net(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="2D batches"):
        net(torch.zeros(1, 1, 8, 8, 8))
    # a small overshoot (interpolation) is clipped instead of rejected
    assert torch.allclose(net(gray * 1.01), net((gray * 1.01).clamp(-1, 1)))


def test_inception_missing_weights_message(empty_hub):
    with pytest.raises(FileNotFoundError) as err:
        InceptionV3Features()
    msg = str(err.value)
    assert "never downloaded" in msg and str(empty_hub) in msg
    assert "pt_inception-2015-12-05" in msg and "inception_v3_google" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        InceptionV3Features("/nonexistent/inception.pth")


def test_inception_loads_local_files(inception_files, empty_hub, monkeypatch):
    tv, fid = inception_files
    net = InceptionV3Features(tv)
    feats, logits = net.features_and_logits(_images(1, 1, (64, 64)))
    assert feats.shape == (1, 2048) and logits.shape == (1, 1000) and net.feature_dim == 2048
    assert not net.tf_fid_layout and net.name == f"inception_v3[{tv.name}]"
    assert all(not p.requires_grad for p in net.parameters())
    # found in the torch hub cache without any argument
    empty_hub.mkdir(parents=True)
    (empty_hub / tv.name).symlink_to(tv)
    assert find_inception_weights() == empty_hub / tv.name
    monkeypatch.setenv(INCEPTION_ENV_VAR, str(fid))
    assert find_inception_weights() == fid


def test_inception_tf_fid_layout_pooling(inception_files):
    _, fid = inception_files
    net = InceptionV3Features(fid)
    assert net.tf_fid_layout
    assert type(net.net.Mixed_7c).__name__.endswith("max") and type(net.net.Mixed_5b).__name__.endswith("avg")
    from torchvision.models.inception import InceptionA

    plain = InceptionA(192, pool_features=32)
    plain.load_state_dict(net.net.Mixed_5b.state_dict())
    plain.eval()
    x = torch.randn(1, 192, 9, 9)
    with torch.no_grad():
        a, b = plain(x), net.net.Mixed_5b(x)
    # average pooling without the zero padding differs only on the border
    assert torch.allclose(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], atol=1e-6)
    assert not torch.allclose(a, b, atol=1e-4)


def test_inception_rejects_other_state_dicts(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, p)
    with pytest.raises(ValueError, match="not an Inception-v3"):
        InceptionV3Features(p)


def test_monai_network_features_layer_checkpoint_and_logits(tmp_path):
    net = resnet10(spatial_dims=2, n_input_channels=1, num_classes=3)
    ext = MonaiNetworkFeatures(net, layer="layer4")
    x = _images(2, 3, (32, 32))  # RGB input reduced to the network's single channel
    f, logits = ext.features_and_logits(x)
    assert f.shape == (2, 512) and logits.shape == (2, 3) and ext.feature_dim == 512
    assert ext.in_channels == 1 and ext.spatial_dims == 2 and ext.has_logits
    # checkpoint with a "state_dict" wrapper and DataParallel prefixes, as MedicalNet ships them
    ckpt = tmp_path / "medicalnet_style.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    fresh = resnet10(spatial_dims=2, n_input_channels=1, num_classes=3)
    ext2 = MonaiNetworkFeatures(fresh, layer="layer4", checkpoint=ckpt)
    assert torch.allclose(ext2.extract(x), ext.extract(x), atol=1e-6)
    assert ext2.name != ext.name  # the cache key follows the weights
    with pytest.raises(ValueError, match="not found"):
        MonaiNetworkFeatures(copy.deepcopy(net), layer="nope")
    with pytest.raises(TypeError, match="state dict"):
        MonaiNetworkFeatures(str(ckpt))
    ext3 = MonaiNetworkFeatures(net, input_transform="zscore", input_size=(24, 24))
    assert ext3(x).shape == (2, 3) and not ext3.has_logits
    with pytest.raises(TypeError, match="classification head"):
        ext3.features_and_logits(x)


def test_monai_network_features_from_torchscript(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    path = tmp_path / "net.ts"
    torch.jit.script(net).save(str(path))
    with pytest.raises(ValueError, match="pass them explicitly"):
        MonaiNetworkFeatures(path)
    ext = MonaiNetworkFeatures(path, in_channels=3, spatial_dims=2, pooling="max", input_transform="imagenet")
    assert ext(_images(2, 1)).shape == (2, 4)
    pickled = tmp_path / "net.pt"
    torch.save(net, pickled)
    with pytest.raises(TypeError, match="(?s)pickled.*execute arbitrary code.*state-dict file"):
        MonaiNetworkFeatures(pickled, input_transform="unit")  # a pickled nn.Module is never unpickled


def test_per_plane_features_for_volumes():
    ext2d = RandomConvFeatures(dim=8)
    ext = PerPlaneFeatures(ext2d, planes=(0, 2), n_slices=3, margin=0.25)
    vol = _images(2, 1, (12, 16, 20))
    f = ext(vol)
    assert f.shape == (2, 16) and ext.feature_dim == 16
    assert ext.slice_indices(20).tolist() == [5, 10, 14]
    # the first plane block is the mean of the 2D features of the chosen x-slices
    idx = ext.slice_indices(12)
    manual = torch.stack([ext2d(vol[:, :, i]) for i in idx.tolist()]).mean(0)
    assert torch.allclose(f[:, :8], manual, atol=1e-6)
    assert "perplane" in ext.name and ext2d.name in ext.name
    with pytest.raises(ValueError, match="planes"):
        PerPlaneFeatures(ext2d, planes=(0, 3))
    with pytest.raises(TypeError, match="2D FeatureExtractor"):
        PerPlaneFeatures(RandomConvFeatures(spatial_dims=3))
