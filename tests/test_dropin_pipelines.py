# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Drop-in proof: the segmentation and detection pipelines of docs/synthetic_mix.md, executed verbatim from the
document, gain synthetic samples with aligned labels by one wrapped dataset / one added transform."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.transforms import Compose, LoadImaged, ScaleIntensityd
from monai.utils import set_determinism

DOC = Path(__file__).resolve().parents[1] / "docs" / "synthetic_mix.md"


def doc_block(name: str) -> str:
    """The python code block that follows ``<!-- test:name -->`` in the document."""
    text = DOC.read_text()
    m = re.search(rf"<!-- test:{re.escape(name)} -->\s*```python\n(.*?)```", text, flags=re.DOTALL)
    if m is None:
        raise AssertionError(f"docs/synthetic_mix.md has no block marked <!-- test:{name} -->")
    return m.group(1)


def run_doc_block(name: str, namespace: dict) -> None:
    """Execute the documented block ``name`` verbatim in ``namespace``."""
    exec(compile(doc_block(name), f"docs/synthetic_mix.md:{name}", "exec"), namespace)  # noqa: S102


@pytest.fixture(scope="module")
def demo_dir():
    from monai_gan_aug.data.demo import get_demo_datalist

    return str(get_demo_datalist(spatial_dims=2, n_patients=3, slices_per_patient=2, image_size=32))


@pytest.fixture(scope="module")
def fastgan_set(demo_dir, tmp_path_factory):
    """A synthetic image + mask set written like a bundle's inference (SeedDataset -> GanGenerationEvaluator ->
    SyntheticWriter) from an untrained FastGAN with a mask channel."""
    from monai_gan_aug.data import load_datalist
    from monai_gan_aug.handlers import write_synthetic_set
    from monai_gan_aug.losses.objectives.fastgan import FastGANObjective
    from monai_gan_aug.networks.nets.fastgan import FastGANGenerator

    torch.manual_seed(0)
    g = FastGANGenerator(latent_size=16, out_channels=2, image_size=32, base_channels=4)
    objective = FastGANObjective(latent_size=16, image_channels=1, mask_channels=1)
    reference = load_datalist(demo_dir, split="training")[0]["image"]
    return write_synthetic_set(g, objective, tmp_path_factory.mktemp("fastgan") / "synthetic", 4, batch_size=4,
                               reference_image=reference)


def _record_batches(engine, store):
    @engine.on(Events.ITERATION_STARTED)
    def _keep(e):
        store.append(e.state.batch)


def test_docs_blocks_show_one_change():
    seg, det = doc_block("segmentation"), doc_block("detection")
    added = "train_ds = SyntheticMixDataset(train_ds, FolderSource(synthetic_dir, transform=train_transforms), ratio=1.0)"
    assert [line for line in seg.splitlines() if line.rstrip().endswith("# added")] == [f"{added}  # added"]
    assert len([line for line in det.splitlines() if line.rstrip().endswith("# added")]) == 1


def test_segmentation_dropin(demo_dir, fastgan_set):
    set_determinism(seed=0)
    ns = {"data_dir": demo_dir, "synthetic_dir": str(fastgan_set), "device": torch.device("cpu"), "max_epochs": 1}
    run_doc_block("segmentation", ns)
    batches: list = []
    _record_batches(ns["trainer"], batches)
    run_doc_block("segmentation-run", ns)
    set_determinism(seed=None)

    assert ns["trainer"].state.epoch == 1 and np.isfinite(float(ns["trainer"].state.output[0]["loss"]))
    flags = torch.cat([b["synthetic"] for b in batches])
    n_real = len(ns["train_files"])
    assert int(flags.sum()) == n_real and int((~flags).sum()) == n_real  # ratio 1.0 exactly: as many synthetic as real
    # every synthetic sample's image and mask are the file pair written for its seed (flipped together or not)
    records = {r["seed"]: r for r in json.loads((fastgan_set / "datalist.json").read_text())["training"]}
    load = Compose([LoadImaged(keys=["image", "label"], ensure_channel_first=True, image_only=True),
                    ScaleIntensityd(keys="image")])
    seen = 0
    for b in batches:
        for j in torch.nonzero(b["synthetic"]).flatten().tolist():
            seed = int(b["seed"][j])
            rec = records[seed]
            ref = load({"image": str(fastgan_set / rec["image"]), "label": str(fastgan_set / rec["label"])})
            img, lab = b["image"][j], b["label"][j]
            assert b["image"].meta["synthetic"][j].item() is True and b["source"][j] == str(fastgan_set.resolve())
            pairs = [(ref["image"], ref["label"]), (ref["image"].flip(1), ref["label"].flip(1))]
            assert any(torch.allclose(img, ri, atol=1e-6) and torch.equal(lab, rl) for ri, rl in pairs), seed
            seen += 1
    assert seen == n_real
    assert all(s == -1 for b in batches for s, f in zip(b["seed"].tolist(), b["synthetic"].tolist()) if not f)


def test_detection_dropin(demo_dir, tmp_path):
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANGenerator
    from monai_gan_aug.transforms.boxes.array import boxes_to_condition_map

    torch.manual_seed(0)
    generator = PGGANGenerator(spatial_dims=2, latent_size=8, max_resolution=32, channels={4: 8, 8: 8, 16: 8, 32: 8})
    objective = PGGANBoxObjective(latent_size=8, max_resolution=32, images_per_phase=1)
    checkpoint = tmp_path / "generator.pt"
    torch.save(generator.state_dict(), checkpoint)

    set_determinism(seed=1)
    ns = {"data_dir": demo_dir, "device": torch.device("cpu"), "max_epochs": 1, "generator": generator,
          "objective": objective, "checkpoint": str(checkpoint)}
    run_doc_block("detection", ns)
    batches: list = []
    _record_batches(ns["det_trainer"], batches)
    run_doc_block("detection-run", ns)
    set_determinism(seed=None)

    flags = torch.cat([b["synthetic"] for b in batches])
    assert 0 < int(flags.sum()) < len(flags), flags  # prob 0.5: both kinds seen over the run
    real_boxes = [np.asarray(f["boxes"], dtype=np.float32).reshape(-1, 4) for f in ns["det_files"]]
    scale = ScaleIntensityd(keys="image")
    for b in batches:
        for j in range(len(b["synthetic"])):
            boxes, box_map = b["boxes"][j], b["box_map"][j]
            assert torch.equal(box_map[0], boxes_to_condition_map(boxes, (32, 32))[0])  # target follows the boxes
            if not bool(b["synthetic"][j]):
                continue
            seed = int(b["seed"][j])
            assert any(r.shape == tuple(boxes.shape) and np.allclose(r, boxes.numpy()) for r in real_boxes)
            # the image is the generator's output for exactly these boxes and this seed
            cond = objective.prepare_batch({"boxes": [boxes], "box_labels": [b["box_labels"][j]]}, torch.device("cpu"))
            with torch.no_grad():
                regen = objective.generate({"generator": generator.eval()}, 1, batch=cond, seeds=[seed])["image"][0]
            assert torch.allclose(b["image"][j], scale({"image": regen})["image"], atol=1e-5)
            assert b["image"].meta["synthetic"][j].item() is True and b["checkpoint"][j] == str(checkpoint)
