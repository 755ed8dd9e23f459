# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Box condition fidelity: box_contrast on planted lesions, the shuffled control, detector recall, the training
handler and the evaluation report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai_gan_aug.evaluation.fidelity import (
    BoxFidelity,
    box_contrast,
    box_contrasts,
    evaluate_box_fidelity,
    shuffle_boxes,
)


def brain(size=64, seed=0, dims=2):
    """A textured 'brain' (values around 0) on a -1 background."""
    rng = np.random.default_rng(seed)
    img = np.full((1,) + (size,) * dims, -1.0, dtype=np.float32)
    inner = (slice(None),) + (slice(6, size - 6),) * dims
    img[inner] = rng.normal(0.0, 0.15, img[inner].shape)
    return img


def plant(img, boxes, value=0.9):
    out = img.copy()
    for b in boxes:
        d = len(b) // 2
        out[(0,) + tuple(slice(int(b[i]), int(b[i + d])) for i in range(d))] = value
    return out


def batch_with_lesions(n=6, size=64):
    rng = np.random.default_rng(1)
    images, boxes = [], []
    for i in range(n):
        k = 1 + i % 3
        bs = []
        for _ in range(k):
            x, y = rng.integers(8, size - 20, 2)
            w, h = rng.integers(4, 10, 2)
            bs.append([x, y, x + w, y + h])
        boxes.append(np.asarray(bs, dtype=np.float32))
        images.append(plant(brain(size, seed=i), bs))
    return torch.as_tensor(np.stack(images)), boxes


def test_planted_lesions_score_far_above_the_shuffled_control():
    images, boxes = batch_with_lesions()
    for img, b in zip(images, boxes):
        assert box_contrast(img, b) > 3.0
    control = shuffle_boxes(boxes, (64, 64), "roll")
    values = [box_contrast(img, c) for img, c in zip(images, control) if len(c)]
    assert values and np.mean(values) < 0.5
    m = BoxFidelity()
    m(images[:3], boxes[:3])
    m(images[3:], boxes[3:])
    out = m.aggregate()
    assert out["num_images"] == 6 and out["num_boxes"] == sum(len(b) for b in boxes)
    assert out["contrast"] > 3.0 and out["contrast_gap"] > 2.5
    assert out["contrast_gap"] == pytest.approx(out["contrast"] - out["contrast_shuffled"])
    # a generator that ignores the boxes (lesions at other places) scores no gap
    ignored = BoxFidelity()
    ignored(images, [boxes[(i + 3) % 6] for i in range(6)])
    assert ignored.aggregate()["contrast"] < 0.5


def test_box_contrast_properties():
    img = plant(brain(), [[10, 10, 18, 16]])
    c = box_contrast(img, [[10, 10, 18, 16]])
    # any intensity range: affine rescaling (e.g. to uint8 PNG values) leaves it unchanged
    assert box_contrast(img * 127.5 + 127.5, np.array([[10, 10, 18, 16]])) == pytest.approx(c, rel=1e-6)
    assert box_contrast(torch.as_tensor(img), torch.tensor([[10.0, 10, 18, 16]])) == pytest.approx(c, rel=1e-6)
    assert np.isnan(box_contrast(img, np.zeros((0, 4))))
    assert np.isnan(box_contrast(img, [[200, 200, 210, 210]]))  # outside the image
    dark = plant(brain(), [[10, 10, 18, 16]], value=-0.8)
    assert box_contrast(dark, [[10, 10, 18, 16]]) < -2.0
    per_box = box_contrasts(plant(brain(), [[10, 10, 18, 16]]), [[10, 10, 18, 16], [40, 40, 46, 46]])
    assert per_box[0] > 3.0 and abs(per_box[1]) < 1.0
    vol = plant(brain(24, dims=3), [[8, 8, 8, 13, 13, 13]])
    assert box_contrast(vol, [[8, 8, 8, 13, 13, 13]]) > 3.0
    with pytest.raises(ValueError, match="channel-first"):
        box_contrast(img[0], [[1, 1, 3, 3]])


def test_shuffle_controls_never_overlap_the_requested_boxes():
    _, boxes = batch_with_lesions()
    for mode in ("roll", "relocate"):
        control = shuffle_boxes(boxes, (64, 64), mode, np.random.default_rng(0))
        for own, c in zip(boxes, control):
            for b in c:
                inter = np.minimum(b[2:], own[:, 2:]) - np.maximum(b[:2], own[:, :2])
                assert not np.any(np.all(inter > 0, axis=1))
                assert (b[:2] >= 0).all() and (b[2:] <= 64).all()
    # a batch of one has no other image: its boxes are relocated
    single = shuffle_boxes(boxes[:1], (64, 64), "roll")
    assert single[0].shape == boxes[0].shape
    with pytest.raises(ValueError, match="shuffle"):
        shuffle_boxes(boxes, (64, 64), "mirror")


def test_detector_recall_requested_vs_shuffled():
    images, boxes = batch_with_lesions()

    def oracle(x):  # "detects" exactly the planted lesions
        assert x.shape[0] == len(boxes)
        return [(torch.as_tensor(b), torch.ones(len(b))) for b in boxes]

    m = BoxFidelity(detector=oracle, iou_thresholds=(0.25, 0.5))
    m(images, boxes)
    out = m.aggregate()
    assert out["recall@0.25"] == 1.0 and out["recall@0.5"] == 1.0
    assert out["recall_shuffled@0.25"] < 0.2

    def shifted(x):  # boxes moved by half their width: IoU 1/3
        out = []
        for b in boxes:
            b = b.copy()
            w = b[:, 2] - b[:, 0]
            b[:, [0, 2]] += w[:, None] / 2
            out.append((b, np.full(len(b), 0.9)))
        return out

    m2 = BoxFidelity(detector=shifted, score_threshold=0.5)
    m2(images, boxes)
    out2 = m2.aggregate()
    assert out2["recall@0.25"] == 1.0 and out2["recall@0.5"] == 0.0
    m3 = BoxFidelity(detector=shifted, score_threshold=0.95)  # every detection below the score threshold
    m3(images, boxes)
    assert m3.aggregate()["recall@0.25"] == 0.0
    with pytest.raises(ValueError, match="no data"):
        BoxFidelity().aggregate()
    with pytest.raises(ValueError, match="box sets"):
        BoxFidelity()(images, boxes[:2])


class _Painter(torch.nn.Module):
    """A stand-in 'generator' that paints the box map bright on a brain: perfect condition fidelity."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, z, cond, stage=None, alpha=1.0):
        n, size = cond.shape[0], cond.shape[-1]
        base = torch.as_tensor(np.stack([brain(size, seed=int(abs(z[i, 0].item()) * 1000)) for i in range(n)]))
        return torch.where(cond > 0.5, 0.9 * self.w, base)


def test_evaluate_box_fidelity_report(tmp_path):
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.transforms.conditions import BoxSampler

    images, boxes = batch_with_lesions()
    sampler = BoxSampler(boxes, (64, 64))
    obj = PGGANBoxObjective(latent_size=4, max_resolution=64, images_per_phase=8)
    real = [{"image": images[i], "boxes": boxes[i]} for i in range(len(boxes))]
    with pytest.raises(ValueError, match="box sampler"):
        evaluate_box_fidelity(_Painter(), obj, num_samples=6)
    report = evaluate_box_fidelity(_Painter(), obj, num_samples=6, seed=3, batch_size=4, output_dir=tmp_path,
                                   sampler=sampler, real_data=real)
    assert report["generated"]["num_images"] == 6 and report["generated"]["contrast_gap"] > 2.0
    assert report["real"]["contrast"] > 3.0
    saved = json.loads((tmp_path / "fidelity.json").read_text())
    assert saved["config"] == {"num_samples": 6, "seed": 3}
    assert "real (reference)" in (tmp_path / "fidelity.md").read_text()


def test_handler_writes_metrics_and_tensorboard(tmp_path):
    from monai.data import DataLoader, Dataset

    from monai_gan_aug.data import gan_collate
    from monai_gan_aug.engines import AdversarialTrainer
    from monai_gan_aug.handlers.fidelity import BoxFidelityHandler
    from monai_gan_aug.losses.objectives.pggan import PGGANBoxObjective
    from monai_gan_aug.networks.nets.pggan import PGGANDiscriminator, PGGANGenerator
    from monai_gan_aug.transforms.boxes.array import boxes_to_condition_map

    images, boxes = batch_with_lesions(4, size=16 * 4)
    small = torch.nn.functional.avg_pool2d(images, 4)
    data = [{"image": small[i], "boxes": torch.as_tensor(boxes[i]) / 4} for i in range(4)]
    data = [dict(d, cond=boxes_to_condition_map(d["boxes"], (16, 16))) for d in data]  # the dataset's box maps
    loader = DataLoader(Dataset(data), batch_size=4, collate_fn=gan_collate)
    torch.manual_seed(0)
    g = PGGANGenerator(2, 4, 1, 1, 16, channels={4: 4, 8: 4, 16: 4})
    d = PGGANDiscriminator(2, 1, 1, 16, channels={4: 4, 8: 4, 16: 4})
    obj = PGGANBoxObjective(latent_size=4, max_resolution=16, images_per_phase=4, batch_size=4)
    handler = BoxFidelityHandler(interval=2, num_samples=4, log_dir=tmp_path / "tb")
    trainer = AdversarialTrainer("cpu", 10, loader, {"generator": g, "discriminator": d},
                         {k: torch.optim.Adam(v.parameters(), 1e-3) for k, v in {"generator": g, "discriminator": d}.items()},
                         obj, max_iterations=3, handlers=[handler])
    trainer.run()
    assert [it for it, _ in handler.history] == [2, 3]
    assert {"fidelity_contrast", "fidelity_contrast_shuffled", "fidelity_contrast_gap"} <= set(trainer.state.metrics)
    assert np.isfinite(trainer.state.metrics["fidelity_contrast"])
    assert list((tmp_path / "tb").glob("events*"))
    with pytest.raises(ValueError, match="num_samples"):
        BoxFidelityHandler(num_samples=1)
