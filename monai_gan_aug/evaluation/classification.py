# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Downstream classification: ResNet / DenseNet / SVM trained with and without synthetic images.

* GA-UNet (Chen et al., generative adversarial U-Net), Table III: ResNet-18, ResNet-50, DenseNet-161 and an SVM
  trained with (W) and without (W/O) GAN augmentation on eight datasets; accuracy, precision, recall and AUC (±
  95 % interval). :func:`run_classification_experiment` repeats this for a real datalist whose items carry an
  image-level ``class`` (the demo dataset: 1 = the slice holds a lesion) and synthetic sets whose items carry the
  class they were generated for: MONAI ``resnet18`` / ``resnet50`` (``spatial_dims=2, n_input_channels=1``),
  ``DenseNet121`` / ``DenseNet169`` and a scikit-learn SVM on flattened or pooled pixels, trained with MONAI's
  ``SupervisedTrainer`` (cross-entropy, Adam; model selection by validation ROC AUC with a
  ``SupervisedEvaluator``), scored on the real test split; ``classification_table.json`` / ``.md`` (mean ± std over
  seeds).
* The thesis (FastGAN / CycleGAN chest X-ray augmentation), Table 4.4: "all synthesized images are classified by
  VGG16 trained on real images and classification accuracy is evaluated", knowing which class each generator was
  trained on. :func:`score_synthetic_with_real_classifier` does this: accuracy of the predicted class against the
  class each synthetic image was generated for, and the classifier's mean confidence.

Precision and recall are those of class 1 for two classes (macro averages otherwise); AUC is
``sklearn.metrics.roc_auc_score`` on the class-1 probability (one-vs-rest macro otherwise), ``nan`` when the test
split holds one class only. SVM "probabilities" are its decision function squashed by a logistic (binary) or softmax
(multi-class): monotone, enough for AUC and the predicted class, not calibrated.

Command line: ``python -m monai_gan_aug.evaluation.classification --real DATALIST --synthetic DIR ... --out DIR``
(``--score_synthetic`` runs the thesis' check instead).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_gan_aug.evaluation.cli import bool_list, float_list, int_list, json_dict, parse_synthetic_args
from monai_gan_aug.evaluation.protocols import (
    _check_int_list,
    _resolve_sizes,
    arm_grid,
    arm_row,
    cached_run,
    classic_augmentation,
    data_label,
    default_device,
    draw_training_data,
    ensure_preloaded,
    fit_supervised,
    load_splits,
    load_synthetic_sets,
    network_from_factory,
    network_name,
    predict_batches,
    preload_items,
    run_file,
    seeded,
    slug,
    source_name,
)
from monai_gan_aug.evaluation.tables import (
    json_safe,
    make_table,
    table_markdown,
    write_table,
)

__all__ = [
    "CLASSIFICATION_COLUMNS",
    "CLASSIFIERS",
    "SVMClassifier",
    "build_classification_network",
    "classification_metrics",
    "evaluate_classifier",
    "main",
    "predict_probabilities",
    "run_classification_experiment",
    "score_synthetic_with_real_classifier",
    "synthetic_scores_markdown",
    "train_classifier",
]

logger = logging.getLogger(__name__)

#: Classifier names understood by :func:`train_classifier`.
CLASSIFIERS = ("resnet18", "resnet50", "densenet121", "densenet169", "svm")
#: Metric columns of the classification table (GA-UNet Table III).
CLASSIFICATION_COLUMNS = (("accuracy", "Acc"), ("precision", "Pre"), ("recall", "Rec"), ("auc", "AUC"))
TABLE_STEM = "classification_table"
SCORES_STEM = "synthetic_scores"


# ---------------------------------------------------------------------------------------------- classifiers
def build_classification_network(
    name: str | Callable[[], nn.Module] = "resnet18", num_classes: int = 2, in_channels: int = 1, **kwargs: Any
) -> nn.Module:
    """A 2D MONAI classification network returning ``(N, num_classes)`` logits.

    Args:
        name: ``"resnet18"`` / ``"resnet50"`` (``monai.networks.nets.resnet18/50(spatial_dims=2,
            n_input_channels=1, num_classes=...)``), ``"densenet121"`` / ``"densenet169"`` (MONAI DenseNet), or a
            callable returning a module.
        num_classes: output classes.
        in_channels: input channels.
        kwargs: network argument overrides (e.g. ``widen_factor=0.25`` for a narrow ResNet, ``init_features=16,
            growth_rate=8`` for a small DenseNet).

    Raises:
        ValueError: an unknown name (``"svm"`` is not a network: see :class:`SVMClassifier`).
    """
    from monai.networks.nets import DenseNet121, DenseNet169, resnet18, resnet50

    if callable(name) and not isinstance(name, str):
        return network_from_factory(name)
    key = str(name).lower().replace("-", "")
    if key in ("resnet18", "resnet50"):
        fn = resnet18 if key == "resnet18" else resnet50
        return fn(spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes, **kwargs)
    if key in ("densenet121", "densenet169"):
        cls = DenseNet121 if key == "densenet121" else DenseNet169
        return cls(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **kwargs)
    raise ValueError(f"unknown classification network {name!r}; use one of {CLASSIFIERS[:-1]} or a callable.")


class SVMClassifier:
    """The GA-UNet paper's SVM baseline: scikit-learn ``SVC`` on image pixels (standardised).

    Args:
        features: ``"flatten"`` (every pixel of the preprocessed image) or ``"pooled"`` (average-pooled to
            ``pool_size x pool_size`` first: fewer, smoother features for larger images).
        pool_size: grid of the pooled features.
        C: SVC regularisation.
        kernel: SVC kernel.
        gamma: SVC kernel coefficient.
        seed: SVC random state.
    """

    def __init__(
        self, features: str = "flatten", pool_size: int = 8, C: float = 1.0, kernel: str = "rbf",
        gamma: str | float = "scale", seed: int = 0,
    ) -> None:
        if features not in ("flatten", "pooled"):
            raise ValueError(f"SVMClassifier: features must be 'flatten' or 'pooled', got {features!r}.")
        if pool_size < 1:
            raise ValueError(f"SVMClassifier: pool_size must be >= 1, got {pool_size}.")
        self.features_kind, self.pool_size = features, int(pool_size)
        self.C, self.kernel, self.gamma, self.seed = float(C), kernel, gamma, int(seed)
        self.model: Any = None
        self.classes_: np.ndarray | None = None

    def features(self, images: Any) -> np.ndarray:
        """``(N, D)`` feature matrix of ``(N, C, H, W)`` images."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).float()
        if x.ndim != 4:
            raise ValueError(f"SVMClassifier: images must be (N, C, H, W), got shape {tuple(x.shape)}.")
        if self.features_kind == "pooled":
            x = torch.nn.functional.adaptive_avg_pool2d(x, self.pool_size)
        return x.reshape(len(x), -1).cpu().numpy().astype(np.float64)

    def fit(self, images: Any, labels: Any) -> SVMClassifier:
        """Fit on images and integer labels (at least two classes)."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        y = np.asarray(labels, dtype=int).reshape(-1)
        if len(np.unique(y)) < 2:
            raise ValueError(f"SVMClassifier: the training images hold one class only ({np.unique(y).tolist()}); "
                             "an SVM needs two. Use more real images (real_sizes) or a stratified split.")
        self.model = make_pipeline(
            StandardScaler(), SVC(C=self.C, kernel=self.kernel, gamma=self.gamma, random_state=self.seed)
        )
        self.model.fit(self.features(images), y)
        self.classes_ = np.asarray(self.model.classes_)
        return self

    def predict_proba(self, images: Any, num_classes: int | None = None) -> np.ndarray:
        """``(N, K)`` scores summing to 1: the decision function through a logistic (2 classes) or a softmax."""
        if self.model is None or self.classes_ is None:
            raise RuntimeError("SVMClassifier: call fit() first.")
        d = np.asarray(self.model.decision_function(self.features(images)), dtype=np.float64)
        k = int(num_classes or (int(self.classes_.max()) + 1))
        out = np.zeros((len(d), k))
        if d.ndim == 1:  # binary: positive = classes_[1]
            p = 1.0 / (1.0 + np.exp(-d))
            out[:, self.classes_[1]] = p
            out[:, self.classes_[0]] = 1.0 - p
        else:
            e = np.exp(d - d.max(1, keepdims=True))
            out[:, self.classes_] = e / e.sum(1, keepdims=True)
        return out


def predict_probabilities(
    classifier: Any, images: Any, batch_size: int = 32, device: str | torch.device | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """``(N, K)`` class probabilities of ``images`` (``(N, C, H, W)`` in ``[-1, 1]``): softmax of a network's logits,
    :meth:`SVMClassifier.predict_proba`, or a callable's output (logits; rows that are already probabilities are
    kept)."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim != 4:
        raise ValueError(f"images must be a (N, C, H, W) batch, got shape {tuple(x.shape)}.")
    if isinstance(classifier, SVMClassifier):
        return classifier.predict_proba(x, num_classes)

    def _probabilities(batch: torch.Tensor, out: Any) -> torch.Tensor:
        y = torch.as_tensor(out).float().cpu()
        if y.ndim != 2 or y.shape[0] != len(batch):
            raise ValueError(f"the classifier returned shape {tuple(y.shape)}; expected (N, K) class scores.")
        is_prob = bool((y >= 0).all() and torch.allclose(y.sum(1), torch.ones(len(y)), atol=1e-4))
        return y if is_prob else torch.softmax(y, dim=1)

    return predict_batches(classifier, x.float(), batch_size, device, _probabilities).numpy().astype(np.float64)


def classification_metrics(labels: Any, probabilities: Any) -> dict[str, Any]:
    """Accuracy, precision, recall and AUC of ``(N, K)`` probabilities against integer labels (see the module
    docstring for the averaging); ``auc`` is ``nan`` when ``labels`` hold a single class.

    Raises:
        ValueError: mismatched lengths or an empty set.
    """
    from sklearn.metrics import (
        accuracy_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(labels, dtype=int).reshape(-1)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ValueError(f"classification_metrics: need (N, K) probabilities for N labels, got {p.shape} and {y.shape}.")
    k = p.shape[1]
    pred = p.argmax(1)
    avg = "binary" if k == 2 else "macro"
    labels_k = list(range(k))
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, average=avg, labels=labels_k if k > 2 else None, zero_division=0)),
        "recall": float(recall_score(y, pred, average=avg, labels=labels_k if k > 2 else None, zero_division=0)),
        "auc": float("nan"),
        "n": len(y),
        "n_per_class": {str(c): int((y == c).sum()) for c in labels_k},
    }
    if len(np.unique(y)) > 1:
        if k == 2:
            out["auc"] = float(roc_auc_score(y, p[:, 1]))
        else:
            q = p / p.sum(1, keepdims=True)
            out["auc"] = float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=labels_k))
    return out


def _as_preloaded(items: Sequence[dict], image_size: int, label_key: str, num_classes: int, percentiles: Sequence[float]) -> list[dict]:
    return ensure_preloaded(items, image_size, class_key=label_key, num_classes=num_classes, percentiles=percentiles)


def _stack(data: Sequence[dict]) -> tuple[torch.Tensor, np.ndarray]:
    return torch.stack([d["image"] for d in data]), np.asarray([int(d["label"]) for d in data])


def train_classifier(
    train_items: Sequence[dict],
    val_items: Sequence[dict] | None = None,
    network: str | Callable[[], nn.Module] = "resnet18",
    epochs: int = 30,
    image_size: int = 64,
    classic_aug: bool = False,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 1e-3,
    num_classes: int = 2,
    label_key: str = "class",
    device: str | torch.device | None = None,
    network_kwargs: Mapping[str, Any] | None = None,
    val_interval: int = 1,
    percentiles: Sequence[float] = (0.5, 99.5),
    svm_aug_copies: int = 4,
    history: dict | None = None,
    n_real: int | None = None,
) -> nn.Module | SVMClassifier:
    """Train a classifier on datalist items with ``label_key`` (or preloaded ``{"image", "label"}`` tensors).

    Networks: cross-entropy, Adam, MONAI ``SupervisedTrainer``; with ``val_items`` holding two or more classes the
    weights of the epoch with the best validation ROC AUC (MONAI ``ROCAUC``) are kept. ``network="svm"``: an
    :class:`SVMClassifier` (``network_kwargs`` go to it; classic augmentation adds ``svm_aug_copies`` randomly
    augmented copies of every training image).

    Args:
        train_items: training items (real and/or synthetic).
        val_items: validation items for model selection.
        network: a name of :data:`CLASSIFIERS` or a factory.
        epochs: training epochs (networks).
        image_size: square input size.
        classic_aug: classic augmentation (flips, small affine, intensity).
        seed: seed of initialisation, loader order and augmentation.
        batch_size: batch size.
        lr: Adam learning rate.
        num_classes: number of classes.
        label_key: item key of the class.
        device: default GPU when available.
        network_kwargs: network (or SVM) argument overrides.
        val_interval: epochs between validations.
        percentiles: intensity window.
        svm_aug_copies: augmented copies per image for the SVM with ``classic_aug``.
        n_real: the first ``n_real`` training items are real: keep their order whatever is added (paired arms,
            see :func:`~monai_gan_aug.evaluation.protocols.fit_supervised`; networks only).
        history: optional dict filled with the training summary.

    Returns:
        The trained network (eval mode) or SVM.
    """
    train = _as_preloaded(train_items, image_size, label_key, num_classes, percentiles)
    val = _as_preloaded(val_items, image_size, label_key, num_classes, percentiles) if val_items else None
    if isinstance(network, str) and network.lower() == "svm":
        t0 = time.perf_counter()
        x, y = _stack(train)
        if classic_aug and svm_aug_copies > 0:
            aug = classic_augmentation(False, image_size)
            aug.set_random_state(seed=int(seed) % (2**32))
            extra = [torch.as_tensor(aug({"image": img})["image"]).as_subclass(torch.Tensor) for _ in range(svm_aug_copies) for img in x]
            x = torch.cat([x, torch.stack(extra)])
            y = np.concatenate([y] * (svm_aug_copies + 1))
        svm = SVMClassifier(seed=seed, **dict(network_kwargs or {})).fit(x, y)
        if history is not None:
            history.update({"train_seconds": round(time.perf_counter() - t0, 3), "epochs": 0, "best_epoch": -1,
                            "best_val": None, "n_train": len(train)})
        return svm
    if val is not None and len({int(d["label"]) for d in val}) < 2:
        logger.warning("train_classifier: the validation items hold one class; keeping the final weights.")
        val = None
    from monai.handlers import ROCAUC, from_engine
    from monai.transforms import Activationsd, AsDiscreted, Compose

    post = Compose([Activationsd(keys="pred", softmax=True), AsDiscreted(keys="label", to_onehot=num_classes)])
    with seeded(seed):
        net = build_classification_network(network, num_classes=num_classes, **dict(network_kwargs or {}))
        info = fit_supervised(
            net, train, nn.CrossEntropyLoss(), epochs, batch_size=batch_size, lr=lr, seed=seed,
            augmentation=classic_augmentation(False, image_size) if classic_aug else None, val_data=val,
            val_metric=("val_auc", ROCAUC(output_transform=from_engine(["pred", "label"]))), val_postprocessing=post,
            val_interval=val_interval, device=device, n_real=n_real,
        )
    if history is not None:
        history.update(info)
    return net


def evaluate_classifier(
    classifier: Any,
    test_items: Sequence[dict],
    image_size: int = 64,
    num_classes: int = 2,
    label_key: str = "class",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
) -> dict[str, Any]:
    """:func:`classification_metrics` of ``classifier`` on test items (or preloaded tensors)."""
    test = _as_preloaded(test_items, image_size, label_key, num_classes, percentiles)
    if not test:
        raise ValueError("evaluate_classifier: no test items.")
    x, y = _stack(test)
    return classification_metrics(y, predict_probabilities(classifier, x, batch_size, device, num_classes))


# ---------------------------------------------------------------------------------------------- experiment
def _row_key(network: str, set_name: str | None, n_real: int, n_syn: int, aug: bool) -> str:
    """``<network>/<set|real>/r<n_real>_s<n_syn>/<aug|noaug>`` (also the metric-name infix of the Ignite handler)."""
    return f"{slug(network)}/{slug(set_name) if n_syn and set_name else 'real'}/r{n_real}_s{n_syn}/{'aug' if aug else 'noaug'}"


def run_classification_experiment(
    real_datalist: Any,
    synthetic: Any = None,
    networks: Sequence[str | Callable[[], nn.Module]] = ("resnet18", "densenet121", "svm"),
    real_sizes: Sequence[int] | int | None = None,
    n_synthetic: Sequence[int] | None = None,
    ratios: Sequence[float] | None = None,
    classic_aug: Sequence[bool] | bool = (False,),
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 30,
    image_size: int = 64,
    label_key: str = "class",
    num_classes: int = 2,
    batch_size: int = 16,
    lr: float = 1e-3,
    val_interval: int = 1,
    network_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    default_class: int | None = None,
    device: str | torch.device | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    out_dir: str | os.PathLike = "runs/classification",
    resume: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """Classification with (W) and without (W/O) synthetic training images, GA-UNet Table III style.

    One run per (classifier, classic augmentation, real-set size, synthetic set and amount, seed): a class-stratified
    real subset of the training split (the same for a seed's W and W/O rows) plus synthetic images drawn from the
    set, scored on the real test split.

    Args:
        real_datalist: real data whose items carry ``label_key`` (``None``: the demo dataset, lesion vs no lesion).
        synthetic: synthetic set(s) whose items carry ``label_key`` (or ``default_class``).
        networks: classifiers (names of :data:`CLASSIFIERS` or factories), one group of rows each.
        real_sizes: real training images per row (default all).
        n_synthetic: synthetic images added per row.
        ratios: or synthetic : real ratios; neither: 0 and 1 with a synthetic set.
        classic_aug: classic augmentation settings.
        seeds: one training per seed.
        epochs: training epochs (networks).
        image_size: square image size.
        label_key: class key.
        num_classes: number of classes.
        batch_size: batch size.
        lr: Adam learning rate.
        val_interval: validation interval (model selection on the real validation split).
        network_kwargs: per-classifier argument overrides, ``{"resnet18": {"widen_factor": 0.5}, "svm": {...}}``.
        default_class: class of synthetic items without one.
        device: default GPU when available.
        percentiles: intensity window.
        out_dir: output folder (``classification_table.json`` / ``.md``, ``runs/*.json``).
        resume: reuse finished runs with identical settings.
        title: table title.

    Returns:
        The table.

    Raises:
        ValueError: empty real training / test split, items without a class, bad arguments.
    """
    seeds = _check_int_list(seeds, "seeds")
    augs = [bool(a) for a in ([classic_aug] if isinstance(classic_aug, bool) else classic_aug)]
    nets = list(networks) if isinstance(networks, Sequence) and not isinstance(networks, str) else [networks]
    if not augs or not nets:
        raise ValueError("classic_aug and networks must each hold at least one entry.")
    out = Path(out_dir).expanduser().absolute()
    t_start = time.perf_counter()
    splits = load_splits(real_datalist)
    sets = load_synthetic_sets(synthetic, require=label_key, default_class=default_class)

    def _pre(items: Sequence[dict]) -> list[dict]:
        return preload_items(items, image_size, class_key=label_key, num_classes=num_classes, percentiles=percentiles)

    train, val, test = (_pre(splits[s]) for s in ("training", "validation", "test"))
    if not test or not train:
        raise ValueError(f"{real_datalist}: the real training and test splits must not be empty.")
    pools = {name: _pre(items) for name, items in sets.items()}
    sizes = _resolve_sizes(real_sizes, len(train))
    train_classes = [int(d["label"]) for d in train]
    kwargs_by_net = {str(k): dict(v) for k, v in (network_kwargs or {}).items()}
    config = {
        "real": source_name(real_datalist),
        "synthetic": {name: len(items) for name, items in sets.items()}, "synthetic_sources": json_safe(synthetic),
        "networks": [network_name(n) for n in nets], "real_sizes": sizes, "n_synthetic": n_synthetic, "ratios": ratios,
        "classic_aug": augs, "seeds": seeds, "epochs": int(epochs), "image_size": int(image_size),
        "label_key": label_key, "num_classes": int(num_classes), "batch_size": int(batch_size), "lr": float(lr),
        "val_interval": int(val_interval), "network_kwargs": kwargs_by_net, "default_class": default_class,
        "percentiles": list(percentiles), "device": str(default_device(device)),
        "n_train_available": len(train), "n_validation": len(val), "n_test": len(test),
        "train_classes": {str(c): train_classes.count(c) for c in range(num_classes)},
        "test_classes": {str(c): sum(int(d["label"]) == c for d in test) for c in range(num_classes)},
    }
    run_dir = out / "runs"
    skip = ("networks", "real_sizes", "n_synthetic", "ratios", "classic_aug", "seeds", "synthetic", "synthetic_sources", "network_kwargs")

    def _run(network: Any, set_name: str | None, n_real: int, n_syn: int, aug: bool, seed: int) -> dict[str, Any]:
        name = network_name(network)
        path = run_file(run_dir, _row_key(name, set_name, n_real, n_syn, aug), seed)
        run_config = {**{k: v for k, v in config.items() if k not in skip}, "network": name,
                      "network_kwargs": kwargs_by_net.get(name, {}), "set": set_name if n_syn else None,
                      "n_set": len(pools[set_name]) if n_syn else 0, "n_real": n_real, "n_synthetic": n_syn,
                      "classic_aug": aug, "seed": seed}

        def _train() -> dict[str, Any]:
            data = draw_training_data(train, n_real, seed, pools.get(set_name), n_syn, stratify=train_classes)  # type: ignore[arg-type]
            info: dict[str, Any] = {}
            clf = train_classifier(
                data, val or None, network=network, epochs=epochs, image_size=image_size, classic_aug=aug, seed=seed,
                batch_size=batch_size, lr=lr, num_classes=num_classes, label_key=label_key, device=device,
                network_kwargs=kwargs_by_net.get(name), val_interval=val_interval, history=info,
            )
            metrics = evaluate_classifier(clf, test, image_size, num_classes, label_key, batch_size, device)
            logger.info("%s: acc %.4f auc %.4f (%.1f s)", path.stem, metrics["accuracy"], metrics["auc"], info["train_seconds"])
            return {"metrics": {k: metrics[k] for k, _ in CLASSIFICATION_COLUMNS}, "n_test": metrics["n"], **info}

        return cached_run(path, run_config, resume, _train)

    rows: list[dict[str, Any]] = []
    for network in nets:
        name = network_name(network)
        for aug in augs:
            for n_real, set_name, n_syn in arm_grid(sizes, pools, n_synthetic, ratios):
                runs = [_run(network, set_name, n_real, n_syn, aug, s) for s in seeds]
                data = data_label(n_real, n_syn)
                fields = {"network": name, "data": data, "set": set_name if n_syn else "-", "n_real": n_real,
                          "n_synthetic": n_syn, "augmentation": "W" if n_syn else "W/O", "classic_aug": aug}
                label = f"{name}, {data}" + (f" ({set_name})" if n_syn else "") + (", classic aug." if aug else "")
                key = _row_key(name, set_name, n_real, n_syn, aug)
                rows.append(arm_row(label, key, fields, runs, CLASSIFICATION_COLUMNS, run_dir, seeds))
    notes = [
        f"{epochs} epochs at {image_size} px (networks), batch {batch_size}, Adam lr {lr:g}; mean ± std over seeds "
        f"{', '.join(map(str, seeds))}; real test split: {len(test)} images, classes {config['test_classes']}. "
        "Precision / recall of class 1" + (" (macro over classes)" if num_classes > 2 else "") + "; W = with synthetic images.",
    ]
    table = make_table(
        title or "Classification with (W) / without (W/O) synthetic training images",
        CLASSIFICATION_COLUMNS,
        rows,
        fields=(("network", "Classifier"), ("data", "Training data"), ("set", "Synthetic set"), ("classic_aug", "Classic aug.")),
        config=config,
        notes=notes,
        elapsed_s=round(time.perf_counter() - t_start, 2),
    )
    write_table(table, out, TABLE_STEM)
    logger.info("classification table written to %s", out / f"{TABLE_STEM}.md")
    return table


# ---------------------------------------------------------------------------------------------- synthetic scoring
def synthetic_scores_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """Markdown of :func:`score_synthetic_with_real_classifier`'s report."""

    def f(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"

    lines = [
        "Synthetic images scored by a classifier trained on real images",
        "",
        (
            f"Classifier `{report.get('classifier')}`; {report['n_synthetic']} synthetic images; accuracy = predicted "
            "class equals the class the image was generated for."
        ),
        "",
        "| Class | n | Accuracy | Mean confidence | Mean p(intended class) |",
        "|---|:---:|:---:|:---:|:---:|",
    ]
    for c, r in report.get("per_class", {}).items():
        lines.append(f"| {c} | {r['n']} | {f(r['accuracy'])} | {f(r['mean_confidence'])} | {f(r['mean_target_probability'])} |")
    lines.append(f"| all | {report['n_synthetic']} | {f(report['accuracy'])} | {f(report['mean_confidence'])} | "
                 f"{f(report['mean_target_probability'])} |")
    real = report.get("real_test")
    if real:
        lines += ["", (f"Same classifier on the real test split: accuracy {f(real['accuracy'])}, AUC "
                       f"{f(real['auc'])} ({real['n']} images).")]
    return "\n".join(lines) + "\n"


def score_synthetic_with_real_classifier(
    real_datalist: Any,
    synthetic: Any,
    classifier: Any = None,
    network: str | Callable[[], nn.Module] = "resnet18",
    epochs: int = 30,
    image_size: int = 64,
    seed: int = 0,
    batch_size: int = 16,
    lr: float = 1e-3,
    num_classes: int = 2,
    label_key: str = "class",
    default_class: int | None = None,
    network_kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The thesis' check: a classifier trained on real images classifies the synthetic ones.

    Args:
        real_datalist: real data; its training (+ validation) split trains the classifier when ``classifier`` is
            ``None``, its test split gives the reference accuracy (``real_test``). ``None``: the demo dataset.
        synthetic: synthetic set(s); every item needs ``label_key`` (the class it was generated for) or
            ``default_class``.
        classifier: an already trained classifier (network, :class:`SVMClassifier` or callable returning class
            scores at ``image_size``); ``None`` trains ``network`` on the real data.
        network: classifier to train (see :func:`train_classifier`).
        epochs: its training epochs.
        image_size: input size.
        seed: training seed.
        batch_size: batch size.
        lr: learning rate.
        num_classes: number of classes.
        label_key: class key.
        default_class: class of synthetic items without one (a generator trained on one class).
        network_kwargs: network overrides.
        device: default GPU when available.
        percentiles: intensity window.
        out_dir: when given, ``synthetic_scores.json`` / ``.md`` are written there.

    Returns:
        ``{"accuracy", "mean_confidence", "mean_target_probability", "n_synthetic", "per_class": {c: {...}},
        "confusion": [[...]] (rows: intended class, columns: predicted), "real_test": metrics or None, ...}``.
    """
    sets = load_synthetic_sets(synthetic, require=label_key, default_class=default_class)
    items = [it for v in sets.values() for it in v]
    if not items:
        raise ValueError("score_synthetic_with_real_classifier: the synthetic set is empty.")
    splits = load_splits(real_datalist) if (classifier is None or real_datalist is not None) else None
    info: dict[str, Any] = {}
    if classifier is None and splits is not None:
        if not splits["training"]:
            raise ValueError(f"{real_datalist}: the real training split is empty; nothing to train the classifier on.")
        classifier = train_classifier(
            splits["training"], splits["validation"] or None, network=network, epochs=epochs, image_size=image_size,
            seed=seed, batch_size=batch_size, lr=lr, num_classes=num_classes, label_key=label_key, device=device,
            network_kwargs=network_kwargs, percentiles=percentiles, history=info,
        )
        name = network_name(network)
    else:
        name = type(classifier).__name__
    pre = preload_items(items, image_size, class_key=label_key, num_classes=num_classes, percentiles=percentiles)
    x, y = _stack(pre)
    p = predict_probabilities(classifier, x, batch_size, device, num_classes)
    pred = p.argmax(1)
    conf = p.max(1)
    target_p = p[np.arange(len(y)), y]
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    per_class = {}
    for c in range(num_classes):
        m = y == c
        if m.any():
            per_class[str(c)] = {
                "n": int(m.sum()), "accuracy": float((pred[m] == c).mean()),
                "mean_confidence": float(conf[m].mean()), "mean_target_probability": float(target_p[m].mean()),
            }
    report: dict[str, Any] = {
        "classifier": name,
        "n_synthetic": len(y),
        "accuracy": float((pred == y).mean()),
        "mean_confidence": float(conf.mean()),
        "mean_target_probability": float(target_p.mean()),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "predicted_counts": {str(c): int((pred == c).sum()) for c in range(num_classes)},
        "real_test": None,
        "training": info or None,
        "config": {"synthetic": {k: len(v) for k, v in sets.items()}, "image_size": int(image_size), "seed": int(seed),
                   "epochs": int(epochs), "network_kwargs": dict(network_kwargs or {}), "label_key": label_key},
    }
    if splits is not None and splits["test"]:
        test_metrics = evaluate_classifier(classifier, splits["test"], image_size, num_classes, label_key, batch_size, device, percentiles)
        report["real_test"] = {k: test_metrics[k] for k in ("accuracy", "precision", "recall", "auc", "n")}
    report = json_safe(report)
    if out_dir is not None:
        write_table(report, out_dir, SCORES_STEM, markdown=synthetic_scores_markdown(report))
    return report


# ---------------------------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m monai_gan_aug.evaluation.classification --real DATALIST --synthetic DIR [DIR ...] --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_gan_aug.evaluation.classification",
        description="ResNet / DenseNet / SVM classification with and without synthetic training images (GA-UNet "
        "Table III); --score_synthetic: a classifier trained on real images scores the synthetic ones (thesis).",
    )
    parser.add_argument("--real", default=None, help="real datalist JSON or folder (default: the demo dataset)")
    parser.add_argument("--synthetic", nargs="*", default=[], help="synthetic sets: DIR ... or NAME=DIR ...")
    parser.add_argument("--networks", default="resnet18,densenet121,svm", help=f"comma-separated, of {CLASSIFIERS}")
    parser.add_argument("--real_sizes", type=int_list, default=None)
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--n_synthetic", type=int_list, default=None)
    amount.add_argument("--ratios", type=float_list, default=None)
    parser.add_argument("--classic_aug", type=bool_list, default=[False])
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--label_key", default="class")
    parser.add_argument("--num_classes", type=int, default=2)
    parser.add_argument("--default_class", type=int, default=None, help="class of synthetic items without one")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no_resume", action="store_true")
    parser.add_argument("--score_synthetic", action="store_true", help="run the real-classifier scoring instead")
    parser.add_argument("--network_kwargs", type=json_dict, default=None,
                        help='per-classifier overrides as JSON, e.g. \'{"resnet18": {"widen_factor": 0.5}}\'')
    args = parser.parse_args(argv)
    nets = [n.strip() for n in args.networks.split(",") if n.strip()]
    bad = [n for n in nets if n not in CLASSIFIERS]
    if bad:
        parser.error(f"unknown classifier(s) {bad}; choose from {CLASSIFIERS}")
    synthetic = parse_synthetic_args(args.synthetic)
    if args.score_synthetic:
        if synthetic is None:
            parser.error("--score_synthetic needs --synthetic")
        report = score_synthetic_with_real_classifier(
            args.real, synthetic, network=nets[0], epochs=args.epochs, image_size=args.image_size,
            seed=args.seeds[0], batch_size=args.batch_size, lr=args.lr, num_classes=args.num_classes,
            label_key=args.label_key, default_class=args.default_class, device=args.device, out_dir=args.out,
            network_kwargs=(args.network_kwargs or {}).get(nets[0]),
        )
        print(synthetic_scores_markdown(report))
        return report
    table = run_classification_experiment(
        args.real, synthetic, networks=nets, real_sizes=args.real_sizes, n_synthetic=args.n_synthetic,
        ratios=args.ratios, classic_aug=args.classic_aug, seeds=args.seeds, epochs=args.epochs,
        image_size=args.image_size, label_key=args.label_key, num_classes=args.num_classes,
        batch_size=args.batch_size, lr=args.lr, default_class=args.default_class, device=args.device,
        network_kwargs=args.network_kwargs, out_dir=args.out, resume=not args.no_resume,
    )
    print(table_markdown(table))
    return table


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
