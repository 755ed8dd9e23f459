# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Tests of the downstream classification experiment (monai_gan_aug.evaluation.classification, handlers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_gan_aug.data.errors import DatalistError
from monai_gan_aug.evaluation import classification as cls
from monai_gan_aug.handlers.downstream import ClassificationEvaluationHandler
from monai_gan_aug.handlers.writer import SyntheticWriter

SIZE = 32
TINY = {"resnet18": {"widen_factor": 0.125}, "densenet121": {"init_features": 8, "growth_rate": 4, "bn_size": 2}}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread for these tiny CPU trainings: on a shared, loaded machine two threads spin-wait for each
    other and make them tens of times slower. The previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    from monai_gan_aug.data.demo import get_demo_datalist

    return get_demo_datalist(n_patients=3, slices_per_patient=2, image_size=SIZE)


def _halves(n, seed=0):
    """Class 1: the left half (spatial axis 0 < 16) is the brighter one; class 0: the right half. The classes survive
    any per-image intensity window."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.arange(n) % 2
    images = torch.rand(n, 1, SIZE, SIZE, generator=g) * 0.4 - 0.8
    for i, c in enumerate(classes.tolist()):
        half = slice(0, SIZE // 2) if c == 1 else slice(SIZE // 2, SIZE)
        images[i, 0, half] += 1.2
    return images, classes


def _write(folder, images, classes=None):
    writer = SyntheticWriter(folder, formats=("nifti",))
    batch = {"image": images, "index": torch.arange(len(images)), "seed": torch.arange(len(images))}
    if classes is not None:
        batch["class"] = classes
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    return folder


@pytest.fixture(scope="module")
def halves_set(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("syn") / "halves", *_halves(6))


class _Oracle(torch.nn.Module):
    """Logits (0, 4 * (mean(left) - mean(right))): knows the planted rule."""

    def forward(self, x):
        d = x[:, 0, : SIZE // 2].mean((1, 2)) - x[:, 0, SIZE // 2 :].mean((1, 2))
        return torch.stack([torch.zeros_like(d), 4 * d], dim=1)


# ---------------------------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_networks_give_class_logits(name):
    net = cls.build_classification_network(name, num_classes=3, **TINY[name])
    assert net(torch.zeros(2, 1, SIZE, SIZE)).shape == (2, 3)
    with pytest.raises(ValueError, match="unknown classification network"):
        cls.build_classification_network("svm")


def test_classification_metrics_known_answers():
    y = [0, 0, 1, 1, 1]
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    m = cls.classification_metrics(y, p)
    # predictions 0 1 1 0 1: TP 2, FP 1, FN 1, TN 1
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    # class-1 scores 0.1 0.6 | 0.8 0.3 0.9: 5 of the 6 (positive, negative) pairs are ranked right
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["n"] == 5 and m["n_per_class"] == {"0": 2, "1": 3}
    assert math.isnan(cls.classification_metrics([1, 1], p[:2])["auc"])
    three = cls.classification_metrics([0, 1, 2], np.eye(3))
    assert three["accuracy"] == 1.0 and three["auc"] == pytest.approx(1.0) and three["precision"] == 1.0
    with pytest.raises(ValueError, match="probabilities"):
        cls.classification_metrics([0, 1], p)


def test_svm_on_planted_halves():
    x, y = _halves(12)
    for kind in ("flatten", "pooled"):
        svm = cls.SVMClassifier(features=kind, pool_size=4).fit(x, y)
        xt, yt = _halves(8, seed=1)
        p = svm.predict_proba(xt)
        assert p.shape == (8, 2) and np.allclose(p.sum(1), 1)
        assert cls.classification_metrics(yt, p)["accuracy"] == 1.0
    assert cls.SVMClassifier(features="pooled", pool_size=4).features(x).shape == (12, 16)
    with pytest.raises(ValueError, match="one class"):
        cls.SVMClassifier().fit(x[:1], y[:1])
    with pytest.raises(ValueError, match="features"):
        cls.SVMClassifier(features="hog")
    with pytest.raises(RuntimeError, match="fit"):
        cls.SVMClassifier().predict_proba(x)


def test_predict_probabilities_accepts_networks_callables_and_svms():
    x, y = _halves(4)
    p = cls.predict_probabilities(_Oracle(), x, device="cpu")
    assert p.shape == (4, 2) and np.allclose(p.sum(1), 1) and (p.argmax(1) == y.numpy()).all()
    probs = cls.predict_probabilities(lambda t: torch.full((len(t), 2), 0.5), x)
    assert np.allclose(probs, 0.5)  # rows that are already probabilities are kept
    with pytest.raises(ValueError, match="class scores"):
        cls.predict_probabilities(lambda t: t, x)


# ---------------------------------------------------------------------------------------------- experiment
def test_train_classifier_learns_planted_halves():
    x, y = _halves(16)
    data = [{"image": i, "label": c} for i, c in zip(x, y)]
    xt, yt = _halves(8, seed=2)
    test = [{"image": i, "label": c} for i, c in zip(xt, yt)]
    hist = {}
    net = cls.train_classifier(data, test, network="resnet18", epochs=6, image_size=SIZE, lr=1e-2, batch_size=8,
                               network_kwargs=TINY["resnet18"], device="cpu", history=hist)
    assert cls.evaluate_classifier(net, test, image_size=SIZE, device="cpu")["auc"] > 0.9
    assert hist["best_epoch"] >= 1 and hist["n_train"] == 16
    svm = cls.train_classifier(data, network="svm", classic_aug=True, svm_aug_copies=2, image_size=SIZE, history=hist)
    assert isinstance(svm, cls.SVMClassifier) and cls.evaluate_classifier(svm, test, image_size=SIZE)["accuracy"] >= 0.75


def test_run_classification_experiment_end_to_end(demo, halves_set, tmp_path):
    table = cls.run_classification_experiment(
        demo, halves_set, networks=("resnet18", "svm"), ratios=(0, 1), seeds=(0, 1), epochs=1, image_size=SIZE,
        network_kwargs=TINY, out_dir=tmp_path / "cls", device="cpu",
    )
    rows = table["rows"]
    assert [r["key"] for r in rows] == ["resnet18/real/r2_s0/noaug", "resnet18/halves/r2_s2/noaug",
                                        "svm/real/r2_s0/noaug", "svm/halves/r2_s2/noaug"]
    assert [r["fields"]["augmentation"] for r in rows] == ["W/O", "W", "W/O", "W"]
    for r in rows:
        for k in ("accuracy", "precision", "recall", "auc"):
            assert r["metrics"][k]["n"] == 2 and all(0 <= v <= 1 for v in r["metrics"][k]["values"])
    assert table["config"]["test_classes"] == {"0": 1, "1": 1}
    md = (tmp_path / "cls" / "classification_table.md").read_text()
    assert "| Classifier | Training data | Synthetic set | Classic aug. | Acc | Pre | Rec | AUC |" in md
    with pytest.raises(DatalistError, match="has no 'grade'"):
        cls.run_classification_experiment(demo, halves_set, label_key="grade", out_dir=tmp_path / "x")


def test_score_synthetic_with_real_classifier_planted(halves_set, tmp_path):
    r = cls.score_synthetic_with_real_classifier(None, halves_set, classifier=_Oracle(), image_size=SIZE,
                                                 device="cpu", out_dir=tmp_path / "score")
    assert r["n_synthetic"] == 6 and r["accuracy"] == 1.0 and r["real_test"] is None
    assert r["confusion"] == [[3, 0], [0, 3]] and r["per_class"]["1"]["accuracy"] == 1.0
    assert 0.5 < r["mean_confidence"] <= 1 and r["mean_target_probability"] == pytest.approx(r["mean_confidence"])
    assert (tmp_path / "score" / "synthetic_scores.md").read_text().count("| 1.000 |") >= 1

    # a generator drawing the opposite class: every image is "wrong", confidently
    flipped = cls.score_synthetic_with_real_classifier(
        None, {"wrong": [{**it, "class": 1 - it["class"]} for it in _items(halves_set)]}, classifier=_Oracle(),
        image_size=SIZE, device="cpu",
    )
    assert flipped["accuracy"] == 0.0
    assert flipped["mean_target_probability"] == pytest.approx(1 - r["mean_confidence"], abs=1e-6)


def _items(folder):
    from monai_gan_aug.evaluation.protocols import load_synthetic_sets

    return next(iter(load_synthetic_sets(folder).values()))


def test_score_synthetic_trains_on_real_and_default_class(demo, tmp_path):
    images, _ = _halves(4)
    unlabeled = _write(tmp_path / "oneclass", images)  # a generator trained on one class: no per-image class
    with pytest.raises(DatalistError, match="default_class"):
        cls.score_synthetic_with_real_classifier(demo, unlabeled, image_size=SIZE)
    r = cls.score_synthetic_with_real_classifier(demo, unlabeled, default_class=1, network="svm", image_size=SIZE)
    assert r["n_synthetic"] == 4 and set(r["per_class"]) == {"1"} and r["real_test"]["n"] == 2
    assert r["accuracy"] == pytest.approx(r["per_class"]["1"]["accuracy"])


def test_handler_and_command_line(demo, tmp_path, capsys):
    images, classes = _halves(4)
    writer = SyntheticWriter(tmp_path / "gen", formats=("nifti",))
    handler = ClassificationEvaluationHandler(
        demo, tmp_path / "eval", networks=("svm",), n_synthetic=(0, 4), seeds=(0,), image_size=SIZE,
        score_synthetic=True,
    )
    batch = {"image": images, "class": classes, "index": torch.arange(4), "seed": torch.arange(4)}
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    handler.attach(engine)
    engine.run([batch], max_epochs=1)
    m = engine.state.metrics
    assert {"classification/svm/real/r2_s0/noaug/accuracy", "classification/svm/gen/r2_s4/noaug/auc",
            "classification/synthetic_scored/accuracy", "classification/synthetic_scored/mean_confidence"} <= set(m)
    assert 0 <= m["classification/synthetic_scored/accuracy"] <= 1
    assert engine.state.classification_table["synthetic_scores"]["n_synthetic"] == 4

    table = cls.main(["--real", str(demo), "--synthetic", str(tmp_path / "gen"), "--networks", "svm", "--ratios", "0,2",
                      "--seeds", "0", "--image_size", str(SIZE), "--out", str(tmp_path / "cli")])
    assert [r["key"] for r in table["rows"]] == ["svm/real/r2_s0/noaug", "svm/gen/r2_s4/noaug"]
    assert "| svm | 2 R + 4 S | gen | no |" in capsys.readouterr().out
    report = cls.main(["--real", str(demo), "--synthetic", str(tmp_path / "gen"), "--networks", "svm",
                       "--image_size", str(SIZE), "--out", str(tmp_path / "cli2"), "--score_synthetic"])
    assert report["n_synthetic"] == 4 and (tmp_path / "cli2" / "synthetic_scores.json").is_file()
    with pytest.raises(SystemExit):
        cls.main(["--out", str(tmp_path), "--networks", "vgg16"])
