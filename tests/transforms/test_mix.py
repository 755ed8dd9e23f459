# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""SyntheticMix / SyntheticMixd: replacement probability, aligned labels, provenance, repeatability through
``self.R``, distinct streams in DataLoader workers, and construction-time errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, RandFlipd
from monai.utils import set_determinism

from monai_gan_aug.data import gan_collate
from monai_gan_aug.data.mix import FolderSource, SyntheticMixError
from monai_gan_aug.engines import GeneratorSource
from monai_gan_aug.handlers import write_synthetic_set
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANGenerator
from monai_gan_aug.transforms.mix import (
    SyntheticMix,
    SyntheticMixD,
    SyntheticMixd,
    SyntheticMixDict,
)

SIZE = 16
pytestmark = pytest.mark.filterwarnings("ignore:.*intensities span:UserWarning")


def dcgan(seed: int = 0, size: int = SIZE):
    torch.manual_seed(seed)
    g = DCGANGenerator(spatial_dims=2, latent_size=8, out_channels=1, image_size=size, base_channels=4)
    return g, DCGANObjective(latent_size=8, latent_spatial=2)


def real_items(n: int = 16, size: int = SIZE) -> list[dict]:
    return [{"image": MetaTensor(torch.full((1, size, size), i / 100.0)), "patient": f"p{i}"} for i in range(n)]


@pytest.fixture(scope="module")
def source() -> GeneratorSource:
    return GeneratorSource(*dcgan(), batch_size=4)


@pytest.fixture(scope="module")
def box_source():
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANGenerator

    torch.manual_seed(0)
    g = PGGANGenerator(spatial_dims=2, latent_size=8, max_resolution=SIZE, channels={4: 8, 8: 8, 16: 8})
    obj = PGGANBoxObjective(latent_size=8, max_resolution=SIZE, images_per_phase=1)
    return GeneratorSource(g, obj, condition_keys=("boxes", "box_labels"), batch_size=4), g, obj


def test_aliases():
    assert SyntheticMixD is SyntheticMixd and SyntheticMixDict is SyntheticMixd


# ------------------------------------------------------------------------------------------------ array
def test_array_prob_extremes_and_provenance(source):
    img = MetaTensor(torch.full((1, SIZE, SIZE), 0.5))
    keep = SyntheticMix(source, prob=0.0)(img)
    assert torch.equal(keep, img) and keep.meta["synthetic"] is False and keep.meta["source"] == "real"
    assert "synthetic" not in img.meta  # the input's meta is not modified in place
    t = SyntheticMix(source, prob=1.0)
    t.set_random_state(0)
    out = t(img)
    assert out.shape == img.shape and not torch.equal(out, img)
    assert out.meta["synthetic"] is True and out.meta["source"] == "generator:DCGANGenerator" and out.meta["seed"] >= 0
    assert torch.allclose(out, source[out.meta["seed"]]["image"])  # exactly the source's sample of that seed
    plain = SyntheticMix(source, prob=1.0)(torch.zeros(1, SIZE, SIZE))
    assert type(plain) is torch.Tensor  # same container type as the input


def test_array_mismatch_errors(source):
    with pytest.raises(SyntheticMixError, match=r"spatial shape \(16, 16\), the real data \(32, 32\)"):
        SyntheticMix(source, prob=0.5, reference=MetaTensor(torch.zeros(1, 32, 32)))
    with pytest.raises(SyntheticMixError, match=r"synthetic image has shape \(1, 16, 16\), the input \(1, 8, 8\)"):
        SyntheticMix(source, prob=1.0)(torch.zeros(1, 8, 8))
    for bad in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(SyntheticMixError, match="prob must be"):
            SyntheticMix(source, prob=bad)


def test_probability_is_honoured_statistically(source):
    t = SyntheticMix(source, prob=0.3)
    t.set_random_state(1)
    img = MetaTensor(torch.zeros(1, SIZE, SIZE))
    hits = sum(bool(t(img).meta["synthetic"]) for _ in range(400))
    assert 0.22 < hits / 400 < 0.38


# ------------------------------------------------------------------------------------------------ dictionary
def test_dict_keys_consistent_and_provenance(source):
    t = SyntheticMixd(keys="image", source=source, prob=0.5)
    t.set_random_state(0)
    outs = [t(d) for d in real_items()]
    assert {frozenset(o) for o in outs} == {frozenset({"image", "synthetic", "source", "checkpoint", "seed"})}
    assert 0 < sum(o["synthetic"] for o in outs) < len(outs)
    for i, o in enumerate(outs):
        assert o["image"].meta["synthetic"] == o["synthetic"]
        if not o["synthetic"]:
            assert torch.equal(o["image"], real_items()[i]["image"]) and o["seed"] == -1
    kept = SyntheticMixd(keys="image", source=source, prob=1.0, other_keys="keep")(real_items()[3])
    assert kept["patient"] == "p3" and kept["synthetic"] is True


def test_dict_conditional_source_replaces_image_and_boxes_together(box_source):
    src, g, obj = box_source
    t = SyntheticMixd(keys="image", source=src, prob=1.0)
    real = {"image": MetaTensor(torch.zeros(1, SIZE, SIZE)), "boxes": [[2.0, 3.0, 7.0, 9.0]], "box_labels": [0]}
    t.check_against(real)
    out = t(real)
    assert out["boxes"] == [[2.0, 3.0, 7.0, 9.0]] and out["box_labels"] == [0]  # list, as in the real sample
    cond = obj.prepare_batch({"boxes": [torch.tensor(out["boxes"])], "box_labels": [torch.tensor([0])]}, torch.device("cpu"))
    with torch.no_grad():
        regen = obj.generate({"generator": g.eval()}, 1, batch=cond, seeds=[out["seed"]])["image"][0]
    assert torch.allclose(out["image"], regen, atol=1e-5)  # generated for exactly these boxes
    with pytest.raises(SyntheticMixError, match=r"no \['boxes', 'box_labels'\] to condition"):
        t({"image": MetaTensor(torch.zeros(1, SIZE, SIZE))})


def test_dict_folder_source_with_masks_keeps_pairs_aligned(tmp_path):
    from monai.transforms import LoadImaged

    from monai_gan_aug.losses.objectives.fastgan import FastGANObjective
    from monai_gan_aug.networks.nets.fastgan import FastGANGenerator

    torch.manual_seed(0)
    g = FastGANGenerator(latent_size=16, out_channels=2, image_size=32, base_channels=4)
    folder = write_synthetic_set(g, FastGANObjective(latent_size=16, image_channels=1, mask_channels=1),
                                 tmp_path / "syn", 4, batch_size=4)
    load = LoadImaged(keys=["image", "label"], ensure_channel_first=True, image_only=True)
    src = FolderSource(folder, transform=load)
    real = {"image": MetaTensor(torch.zeros(1, 32, 32)), "label": MetaTensor(torch.zeros(1, 32, 32)), "tissue": 1}
    t = SyntheticMixd(keys="image", source=src, prob=1.0, reference=real)
    t.set_random_state(0)
    for _ in range(6):
        out = t(real)
        ref = src.items[[it["seed"] for it in src.items].index(out["seed"])]
        pair = load({"image": ref["image"], "label": ref["label"]})
        assert torch.equal(out["image"], pair["image"]) and torch.equal(out["label"], pair["label"])
        assert out["label"].dtype == real["label"].dtype and "tissue" not in out
    with pytest.raises(SyntheticMixError, match=r"produces no \['label'\]"):
        SyntheticMixd(keys="image", source=GeneratorSource(*dcgan(size=32)), reference=real)


def test_dict_errors_at_construction(source):
    with pytest.raises(SyntheticMixError, match="prob must be"):
        SyntheticMixd(keys="image", source=source, prob=2.0)
    with pytest.raises(TypeError, match="source must be a SyntheticSource"):
        SyntheticMixd(keys="image", source=[{"image": torch.zeros(1, SIZE, SIZE)}])
    with pytest.raises(SyntheticMixError, match="other_keys must be 'drop' or 'keep'"):
        SyntheticMixd(keys="image", source=source, other_keys="merge")
    with pytest.raises(SyntheticMixError, match=r"has 1 channel\(s\), the real data 2"):
        SyntheticMixd(keys="image", source=source, reference={"image": MetaTensor(torch.zeros(2, SIZE, SIZE))})
    with pytest.raises(SyntheticMixError, match="voxel spacing"):
        coarse = GeneratorSource(*dcgan(), affine=np.diag([4.0, 4.0, 1.0, 1.0]))
        SyntheticMixd(keys="image", source=coarse, reference={"image": MetaTensor(torch.zeros(1, SIZE, SIZE))})
    t = SyntheticMixd(keys="image", source=source, prob=1.0)
    with pytest.raises(SyntheticMixError, match=r"produced no \['label'\]"):  # without a reference: clear at call
        t({"image": MetaTensor(torch.zeros(1, SIZE, SIZE)), "label": MetaTensor(torch.zeros(1, SIZE, SIZE))})


# ------------------------------------------------------------------------------------------------ randomness
def _run(seed: int | None, num_workers: int, loader_cls=DataLoader, prob: float = 0.5, n: int = 16):
    src = GeneratorSource(*dcgan(), batch_size=4)
    chain = Compose([SyntheticMixd(keys="image", source=src, prob=prob), RandFlipd(keys="image", prob=0.5)])
    if seed is not None:
        set_determinism(seed=seed)
    loader = loader_cls(Dataset(real_items(n), transform=chain), batch_size=2, num_workers=num_workers,
                        collate_fn=gan_collate, shuffle=False)
    out = [(bool(f), int(s), float(i.sum())) for b in loader for f, s, i in zip(b["synthetic"], b["seed"], b["image"])]
    set_determinism(seed=None)
    return out


def test_set_determinism_repeats_and_set_random_state(source):
    a, b, c = _run(7, 0), _run(7, 0), _run(8, 0)
    assert a == b and a != c
    assert 0 < sum(f for f, _, _ in a) < len(a)
    t1, t2 = SyntheticMixd("image", source, prob=0.5), SyntheticMixd("image", source, prob=0.5)
    t1.set_random_state(5)
    t2.set_random_state(5)
    seq1 = [t1(d)["seed"] for d in real_items()]
    assert seq1 == [t2(d)["seed"] for d in real_items()]


@pytest.mark.parametrize("loader_cls", [DataLoader, torch.utils.data.DataLoader], ids=["monai", "torch"])
def test_workers_draw_distinct_synthetic_samples(loader_cls):
    items = _run(3, 2, loader_cls=loader_cls, prob=1.0, n=16)
    seeds = [s for _, s, _ in items]
    assert len(seeds) == 16 and len(set(seeds)) == 16  # no synthetic sample twice across the two workers
    # each worker reads runs of consecutive indices (one generated block of 4) from its own random start
    starts = {s - s % 4 for s in seeds}
    assert len(starts) == 4


def test_stream_uses_whole_generator_blocks():
    g, obj = dcgan(2)
    calls = []
    g.register_forward_hook(lambda m, i, o: calls.append(int(o.shape[0])))
    src = GeneratorSource(g, obj, batch_size=4)
    calls.clear()
    t = SyntheticMixd("image", src, prob=1.0)
    t.set_random_state(0)
    seeds = [t(d)["seed"] for d in real_items(8)]
    assert calls == [4, 4]  # 8 samples, two forward passes
    assert seeds[1:4] == [seeds[0] + 1, seeds[0] + 2, seeds[0] + 3] and seeds[0] % 4 == 0
