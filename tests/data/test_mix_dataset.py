# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""SyntheticMixDataset, its sources and epoch handler: exact ratios, schedules, repeatability, workers,
provenance, label alignment and construction-time errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset, MetaTensor
from torch.utils.data import DistributedSampler

from monai_gan_aug.data.mix import (
    VIRTUAL_LENGTH,
    FolderSource,
    MissingCheckpointError,
    RatioSchedule,
    SyntheticMixDataset,
    SyntheticMixError,
)
from monai_gan_aug.engines import GeneratorSource
from monai_gan_aug.handlers import SyntheticMixEpochHandler, write_synthetic_set
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANGenerator

SIZE = 16
pytestmark = pytest.mark.filterwarnings("ignore:.*intensities span:UserWarning")


def make_generator(seed: int = 0, channels: int = 1) -> tuple[DCGANGenerator, DCGANObjective]:
    torch.manual_seed(seed)
    g = DCGANGenerator(spatial_dims=2, latent_size=8, out_channels=channels, image_size=SIZE, base_channels=4)
    return g, DCGANObjective(latent_size=8, latent_spatial=2)


def real_items(n: int = 8, size: int = SIZE, channels: int = 1, spacing: float = 1.0) -> list[dict]:
    """Real samples whose image is constant ``id / 100`` (so a sample can be recognised) with a class."""
    aff = torch.diag(torch.tensor([spacing, spacing, 1.0, 1.0], dtype=torch.float64))
    return [{"image": MetaTensor(torch.full((channels, size, size), i / 100.0), affine=aff), "class": i % 2,
             "patient": f"p{i}"} for i in range(n)]


def real_id(item: dict) -> int:
    return round(float(item["image"].flatten()[0]) * 100)


@pytest.fixture(scope="module")
def gen_source() -> GeneratorSource:
    g, obj = make_generator()
    return GeneratorSource(g, obj, batch_size=4)


@pytest.fixture(scope="module")
def dcgan_set(tmp_path_factory):
    """12 images written like a bundle's inference (SyntheticWriter via GanGenerationEvaluator)."""
    g, obj = make_generator(1)
    return write_synthetic_set(g, obj, tmp_path_factory.mktemp("dcgan") / "synthetic", 12, batch_size=8)


def epoch_items(ds, batch_size=4, **kw) -> list[dict]:
    out = []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, **kw):
        for j in range(len(batch["synthetic"])):
            out.append({k: (v[j] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()})
    return out


# ------------------------------------------------------------------------------------------------ ratios
@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0, 2.0])
def test_add_ratio_is_exact_over_an_epoch(gen_source, ratio):
    ds = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=ratio, class_keys=None)
    items = epoch_items(ds)
    syn = [it for it in items if bool(it["synthetic"])]
    real = [it for it in items if not bool(it["synthetic"])]
    assert len(syn) == int(ratio * 8) and len(real) == 8 and len(ds) == 8 + int(ratio * 8)
    assert sorted(real_id(it) for it in real) == list(range(8))  # every real sample exactly once
    assert len({int(it["seed"]) for it in syn}) == len(syn)  # no synthetic sample twice


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 1.0])
def test_replace_ratio_is_exact_and_positions_kept(gen_source, ratio):
    ds = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=ratio, mode="replace", class_keys=None)
    assert len(ds) == 8
    items = [ds[i] for i in range(8)]
    flags = [bool(it["synthetic"]) for it in items]
    assert sum(flags) == int(ratio * 8)
    for i, it in enumerate(items):  # a real position holds its own real sample
        if not flags[i]:
            assert real_id(it) == i


def test_same_seed_same_epoch_other_seed_or_epoch_differs(gen_source):
    def signature(ds):
        return [(bool(it["synthetic"]), int(it["seed"]), float(it["image"].sum())) for it in (ds[i] for i in range(len(ds)))]

    a = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=1.0, seed=3, class_keys=None)
    b = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=1.0, seed=3, class_keys=None)
    c = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=1.0, seed=4, class_keys=None)
    assert signature(a) == signature(b)
    assert signature(a) != signature(c)
    a.set_epoch(1)
    b.set_epoch(1)
    assert signature(a) == signature(b)
    assert a.plan(0).synthetic.tolist() != a.plan(1).synthetic.tolist()
    assert set(a.plan(0).source_index[a.plan(0).synthetic]).isdisjoint(a.plan(1).source_index[a.plan(1).synthetic])


def test_finite_source_drawn_without_repeats_within_an_epoch(dcgan_set):
    src = FolderSource(dcgan_set)
    ds = SyntheticMixDataset(Dataset(real_items(8, channels=1)), src, ratio=1.5, class_keys=None,
                             spacing_tolerance=None)
    for epoch in range(4):
        ds.set_epoch(epoch)
        plan = ds.plan()
        used = plan.source_index[plan.synthetic]
        assert len(used) == 12 and len(set(used.tolist())) == 12


# ------------------------------------------------------------------------------------------------ schedules
def test_linear_schedule_ramps_with_epoch_handler(gen_source):
    ds = SyntheticMixDataset(Dataset(real_items(8)), gen_source, mode="replace", class_keys=None,
                             schedule={"type": "linear", "start": 0.0, "end": 1.0, "epochs": 5})
    counts: list[int] = []
    loader = DataLoader(ds, batch_size=4, shuffle=True)
    engine = Engine(lambda e, batch: counts.__setitem__(-1, counts[-1] + int(batch["synthetic"].sum())))
    SyntheticMixEpochHandler(ds).attach(engine)
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: counts.append(0))
    engine.run(loader, max_epochs=6)
    assert counts == [0, 2, 4, 6, 8, 8]


def test_add_schedule_keeps_length_and_ratio(gen_source):
    ds = SyntheticMixDataset(Dataset(real_items(6)), gen_source, ratio=1.0, class_keys=None,
                             schedule=lambda e: [0.0, 0.5, 1.0][min(e, 2)])
    assert len(ds) == 12
    for epoch, r in enumerate([0.0, 0.5, 1.0]):
        ds.set_epoch(epoch)
        items = epoch_items(ds)
        n_syn = sum(bool(it["synthetic"]) for it in items)
        n_real = len(items) - n_syn
        assert len(items) == 12 and n_syn / n_real == r  # 0/12, 4/8, 6/6
        assert set(range(6)) <= {real_id(it) for it in items if not bool(it["synthetic"])}


def test_schedule_and_ratio_validation(gen_source):
    real = Dataset(real_items(4))
    assert RatioSchedule({"type": "linear", "start": 0.2, "end": 0.6, "epochs": 3})(1) == pytest.approx(0.4)
    assert RatioSchedule({"type": "linear", "start": 0.2, "end": 0.6, "epochs": 3})(7) == pytest.approx(0.6)
    with pytest.raises(SyntheticMixError, match="exceeds ratio"):
        ds = SyntheticMixDataset(real, gen_source, ratio=0.5, schedule=lambda e: 0.25 * e, class_keys=None)
        ds.set_epoch(3)
    with pytest.raises(SyntheticMixError, match="unknown schedule type"):
        SyntheticMixDataset(real, gen_source, schedule={"type": "cosine"}, class_keys=None)
    with pytest.raises(SyntheticMixError, match=r"needs \['epochs'\]"):
        SyntheticMixDataset(real, gen_source, schedule={"type": "linear", "start": 0, "end": 1}, class_keys=None)
    with pytest.raises(SyntheticMixError, match=r"schedule\['end'\] must be \[0, 1\]"):
        SyntheticMixDataset(real, gen_source, mode="replace", schedule={"start": 0, "end": 2, "epochs": 2}, class_keys=None)
    with pytest.raises(SyntheticMixError, match="set_epoch: epoch must be an int >= 0"):
        SyntheticMixDataset(real, gen_source, class_keys=None).set_epoch(-1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ratio": -0.5}, r"ratio must be >= 0, got -0.5"),
        ({"ratio": float("nan")}, r"ratio must be >= 0"),
        ({"ratio": True}, r"ratio must be a number"),
        ({"ratio": 1.5, "mode": "replace"}, r"fraction of replaced samples\) must be \[0, 1\], got 1.5"),
        ({"mode": "swap"}, r"mode must be 'add' or 'replace'"),
    ],
)
def test_bad_ratio_or_mode_raises_at_construction(gen_source, kwargs, match):
    with pytest.raises(SyntheticMixError, match=match):
        SyntheticMixDataset(Dataset(real_items(4)), gen_source, class_keys=None, **kwargs)


def test_too_much_synthetic_warns_citing_paper(gen_source):
    with pytest.warns(UserWarning, match="1:1 to 1:2"):
        SyntheticMixDataset(Dataset(real_items(4)), gen_source, ratio=3.0, class_keys=None)


# ------------------------------------------------------------------------------------------------ workers
def test_workers_no_repeated_synthetic_samples(dcgan_set, gen_source):
    folder = SyntheticMixDataset(Dataset(real_items(8)), FolderSource(dcgan_set), ratio=1.0, class_keys=None,
                                 spacing_tolerance=None)
    virtual = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=2.0, class_keys=None)
    for ds, n_syn in ((folder, 8), (virtual, 16)):
        items = epoch_items(ds, batch_size=2, num_workers=2)
        seeds = [int(it["seed"]) for it in items if bool(it["synthetic"])]
        assert len(seeds) == n_syn and len(set(seeds)) == n_syn
        single = [int(it["seed"]) for it in epoch_items(ds, batch_size=2) if bool(it["synthetic"])]
        assert seeds == single  # workers fetch exactly the epoch's mapping


def test_persistent_workers_follow_set_epoch(gen_source):
    ds = SyntheticMixDataset(Dataset(real_items(4)), gen_source, ratio=1.0, class_keys=None)
    loader = DataLoader(ds, batch_size=2, shuffle=False, num_workers=2, persistent_workers=True)
    seen = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen.append(sorted(int(s) for b in loader for s, f in zip(b["seed"], b["synthetic"]) if f))
    assert seen[0] == [0, 1, 2, 3] and seen[1] == [4, 5, 6, 7]  # virtual source: fresh samples each epoch


def test_distributed_sampler_splits_one_consistent_epoch(gen_source):
    ds = SyntheticMixDataset(Dataset(real_items(8)), gen_source, ratio=0.5, class_keys=None)
    ds.set_epoch(2)
    parts = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(2)
        parts.append([ds[i] for i in sampler])
    both = parts[0] + parts[1]
    assert len(both) == 12 and sum(bool(it["synthetic"]) for it in both) == 4
    assert sorted(real_id(it) for it in both if not bool(it["synthetic"])) == list(range(8))


# ------------------------------------------------------------------------------------------------ provenance, labels
def test_provenance_in_dict_and_meta(dcgan_set, tmp_path):
    g, obj = make_generator(2)
    ckpt = tmp_path / "g.pt"
    torch.save(g.state_dict(), ckpt)
    src = GeneratorSource(make_generator(5)[0], obj, checkpoint=str(ckpt), batch_size=2)
    loaded, saved = src.network.state_dict(), g.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)  # the checkpoint's weights, not make_generator(5)'s
    ds = SyntheticMixDataset(Dataset(real_items(4)), src, ratio=1.0, class_keys=None)
    for item in (ds[i] for i in range(len(ds))):
        meta = item["image"].meta
        assert set(item) == {"image", "synthetic", "source", "checkpoint", "seed"}  # 'class'/'patient' dropped
        for key in ("synthetic", "source", "checkpoint", "seed"):
            assert meta[key] == item[key]
        if item["synthetic"]:
            assert item["source"] == "generator:DCGANGenerator" and item["checkpoint"] == str(ckpt) and item["seed"] >= 0
        else:
            assert item["source"] == "real" and item["checkpoint"] == "" and item["seed"] == -1
    records = {r["seed"]: r for r in json.loads((dcgan_set / "datalist.json").read_text())["training"]}
    fsrc = FolderSource(dcgan_set)
    sample = fsrc[3]
    assert sample["synthetic"] is True and sample["image"].meta["synthetic"] is True
    assert sample["seed"] in records and sample["source"] == str(dcgan_set.resolve())
    assert sample["image"].meta["filename_or_obj"].endswith(records[sample["seed"]]["image"])


def test_keep_other_keys_and_type_matching(gen_source):
    ds = SyntheticMixDataset(Dataset(real_items(4)), gen_source, ratio=1.0, class_keys=None, other_keys="keep")
    keys = {frozenset(ds[i]) for i in range(len(ds))}
    assert keys == {frozenset({"image", "class", "patient", "synthetic", "source", "checkpoint", "seed"})}
    syn = next(ds[i] for i in range(len(ds)) if ds[i]["synthetic"])
    assert isinstance(syn["image"], MetaTensor) and syn["image"].dtype == torch.float32


def test_conditional_source_replace_mode_keeps_the_replaced_samples_boxes():
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANGenerator

    torch.manual_seed(0)
    g = PGGANGenerator(spatial_dims=2, latent_size=8, max_resolution=SIZE, channels={4: 8, 8: 8, 16: 8})
    obj = PGGANBoxObjective(latent_size=8, max_resolution=SIZE, images_per_phase=1)
    src = GeneratorSource(g, obj, condition_keys=("boxes", "box_labels"), batch_size=4)
    real = [dict(r, boxes=[[float(i), 1.0, float(i) + 3.0, 5.0]], box_labels=[0]) for i, r in enumerate(real_items(8))]
    ds = SyntheticMixDataset(Dataset(real), src, ratio=0.5, mode="replace", class_keys=None)
    items = epoch_items(ds, batch_size=4, collate_fn=__import__("monai_gan_aug.data", fromlist=["x"]).gan_collate)
    plan = ds.plan()
    assert sum(bool(it["synthetic"]) for it in items) == 4
    for p, it in enumerate(items):
        assert it["boxes"].tolist() == [[float(p), 1.0, float(p) + 3.0, 5.0]]  # labels of the position's real sample
        if bool(it["synthetic"]):
            assert plan.real_index[p] == p
            cond = obj.prepare_batch({"boxes": [it["boxes"]], "box_labels": [it["box_labels"]]}, torch.device("cpu"))
            with torch.no_grad():
                regen = obj.generate({"generator": g.eval()}, 1, batch=cond, seeds=[int(it["seed"])])["image"][0]
            assert torch.allclose(it["image"], regen, atol=1e-5)


# ------------------------------------------------------------------------------------------------ sources
def test_generator_source_same_index_same_sample_and_batched_cache():
    g, obj = make_generator(3)
    calls = []
    g.register_forward_hook(lambda m, i, o: calls.append(int(o.shape[0])))
    src = GeneratorSource(g, obj, batch_size=4, cache_size=2)
    assert len(src) == VIRTUAL_LENGTH and src.is_virtual
    calls.clear()
    x5 = src[5]["image"]
    assert calls == [4]  # the aligned block 4..7 in one forward pass
    assert [int(src[i]["seed"]) for i in (4, 6, 7)] == [4, 6, 7] and calls == [4]  # cached
    other = GeneratorSource(make_generator(3)[0], obj, batch_size=3, cache_size=0)
    assert torch.allclose(other.get_batch([9, 5, 1])[1]["image"], x5, atol=1e-5)  # batch composition is irrelevant
    assert not torch.allclose(src[6]["image"], x5)
    finite = GeneratorSource(make_generator(3)[0], obj, num_samples=6, batch_size=4)
    assert len(finite) == 6 and finite[5]["seed"] == 5
    with pytest.raises(IndexError):
        finite[6]


def test_generator_source_bad_input():
    g, obj = make_generator()
    with pytest.raises(MissingCheckpointError, match="missing_generator.pt.*not found") as err:
        GeneratorSource(g, obj, checkpoint="/nonexistent/missing_generator.pt")
    assert isinstance(err.value, ValueError) and isinstance(err.value, FileNotFoundError)
    with pytest.raises(SyntheticMixError, match="num_samples must be a positive int .*empty"):
        GeneratorSource(g, obj, num_samples=0)
    with pytest.raises(SyntheticMixError, match="batch_size"):
        GeneratorSource(g, obj, batch_size=0)
    with pytest.raises(TypeError, match="network must be a torch.nn.Module"):
        GeneratorSource("generator.pt", obj)
    with pytest.raises(TypeError, match="objective must be a GanObjective"):
        GeneratorSource(g, object())
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANGenerator

    pg = PGGANGenerator(spatial_dims=2, latent_size=8, max_resolution=SIZE, channels={4: 8, 8: 8, 16: 8})
    with pytest.raises(SyntheticMixError, match="failed without conditions.*condition_keys"):
        GeneratorSource(pg, PGGANBoxObjective(latent_size=8, max_resolution=SIZE, images_per_phase=1))


def test_folder_source_reads_writer_output(dcgan_set):
    by_folder, by_json = FolderSource(dcgan_set), FolderSource(dcgan_set / "datalist.json")
    assert len(by_folder) == len(by_json) == 12  # the whole set, not a training split of it
    items = FolderSource([dict(i) for i in by_folder.items])
    assert torch.equal(items[0]["image"], by_folder[0]["image"]) and by_folder[0]["image"].shape == (1, SIZE, SIZE)
    from monai.transforms import Compose, LoadImaged, ScaleIntensityd

    scaled = FolderSource(dcgan_set, transform=Compose([LoadImaged("image", ensure_channel_first=True), ScaleIntensityd("image")]))
    assert float(scaled[0]["image"].min()) == 0.0 and float(scaled[0]["image"].max()) == pytest.approx(1.0)


def test_folder_source_bad_input(tmp_path, dcgan_set):
    with pytest.raises(SyntheticMixError, match="does not exist"):
        FolderSource(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "datalist.json").write_text(json.dumps({"training": []}))
    with pytest.raises(ValueError, match="no synthetic samples|no 'training'"):
        FolderSource(empty)
    items = json.loads((dcgan_set / "datalist.json").read_text())["training"]
    real_like = [dict(items[0], image=str(dcgan_set / items[0]["image"]), synthetic=False)]
    with pytest.raises(SyntheticMixError, match="marked synthetic: false"):
        FolderSource(real_like)
    with pytest.raises(SyntheticMixError, match="no synthetic samples"):
        FolderSource([])


# ------------------------------------------------------------------------------------------------ mismatches
def test_mismatching_source_raises_at_construction(dcgan_set, gen_source):
    with pytest.raises(SyntheticMixError, match=r"spatial shape \(16, 16\), the real data \(32, 32\)"):
        SyntheticMixDataset(Dataset(real_items(4, size=32)), gen_source, class_keys=None)
    with pytest.raises(SyntheticMixError, match=r"has 1 channel\(s\), the real data 3"):
        SyntheticMixDataset(Dataset(real_items(4, channels=3)), gen_source, class_keys=None)
    g, obj = make_generator()
    coarse = GeneratorSource(g, obj, affine=np.diag([3.0, 3.0, 1.0, 1.0]))
    with pytest.raises(SyntheticMixError, match=r"voxel spacing \[3.0, 3.0\], the real data \[1.0, 1.0\]"):
        SyntheticMixDataset(Dataset(real_items(4)), coarse, class_keys=None)
    SyntheticMixDataset(Dataset(real_items(4)), coarse, class_keys=None, spacing_tolerance=None)  # check disabled
    labelled = [dict(r, label=MetaTensor(torch.zeros(1, SIZE, SIZE))) for r in real_items(4)]
    with pytest.raises(SyntheticMixError, match=r"produces no \['label'\]"):
        SyntheticMixDataset(Dataset(labelled), FolderSource(dcgan_set), class_keys=None, spacing_tolerance=None)
    with pytest.raises(SyntheticMixError, match=r"produces no \['class'\]"):
        SyntheticMixDataset(Dataset(real_items(4)), gen_source)  # the real data has an image-level class
    with pytest.raises(SyntheticMixError, match="real_dataset is empty"):
        SyntheticMixDataset(Dataset([]), gen_source, class_keys=None)
    with pytest.raises(SyntheticMixError, match="mixes dict samples"):
        SyntheticMixDataset([torch.zeros(1, SIZE, SIZE)], gen_source)
    with pytest.raises(TypeError, match="source must be a SyntheticSource"):
        SyntheticMixDataset(Dataset(real_items(4)), [{"image": torch.zeros(1, SIZE, SIZE)}])


def test_epoch_handler_targets():
    epochs: list[int] = []
    loader = DataLoader(Dataset(real_items(2)), batch_size=1)
    loader.dataset.set_epoch = epochs.append
    handler = SyntheticMixEpochHandler(loader)
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    handler.attach(engine)  # attaching twice adds one handler
    engine.run([0, 1], max_epochs=3)
    assert epochs == [0, 1, 2]
    with pytest.raises(TypeError, match="has no set_epoch"):
        SyntheticMixEpochHandler(object())
    assert math.isclose(RatioSchedule(0.5)(10), 0.5)
