# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Feature extractors behind one interface, for FID/KID/MMD/1-NN/precision-recall and the memorization check.

Every extractor is a :class:`FeatureExtractor`: an ``nn.Module`` whose ``forward(images)`` maps a batch of
channel-first images ``(N, C, *spatial)`` in ``[-1, 1]`` (the generators' ``tanh`` range and the project's
convention) with ``C`` = 1 (grayscale) or 3 (RGB) to ``(N, D)`` features. :meth:`FeatureExtractor.preprocess`
is the single place where inputs are checked and converted:

* values must lie in ``[-1, 1]`` (a small overshoot from interpolation is clipped; anything beyond
  ``range_tolerance`` raises, which catches ``[0, 255]`` or ``[0, 1]`` inputs);
* grayscale is repeated to 3 channels for 3-channel networks; RGB is reduced to luma (ITU-R BT.601
  ``0.299 R + 0.587 G + 0.114 B``) for 1-channel networks;
* each extractor then maps ``[-1, 1]`` to its own network range (Inception: ``[-1, 1]`` unchanged at 299x299;
  :class:`MonaiNetworkFeatures`: ``none`` / ``unit`` / ``imagenet`` / ``zscore``).

``forward`` keeps autograd (an FID loss needs gradients w.r.t. the images); :meth:`FeatureExtractor.extract` is
the batched, ``no_grad`` path used by the metrics. Extractors never download weights.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from monai_gan_aug.utils.weights import hub_checkpoints_dir, local_weights_file

__all__ = [
    "INCEPTION_ENV_VAR",
    "INCEPTION_WEIGHT_PATTERNS",
    "FeatureExtractor",
    "InceptionV3Features",
    "MonaiNetworkFeatures",
    "PerPlaneFeatures",
    "RandomConvFeatures",
    "find_inception_weights",
    "to_channels",
]

#: File name patterns searched in ``torch.hub.get_dir()/checkpoints``: torchvision's ImageNet weights and the
#: TF-FID-compatible weights of pytorch-fid.
INCEPTION_WEIGHT_PATTERNS = ("pt_inception-2015-12-05-*.pth", "inception_v3_google-*.pth")
#: Environment variable that may name the Inception weight file.
INCEPTION_ENV_VAR = "MONAI_GAN_AUG_INCEPTION_WEIGHTS"

_LUMA = (0.299, 0.587, 0.114)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert channel-first batches between 1 and 3 channels (repeat gray, BT.601 luma for RGB -> gray)."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, *images.shape[2:])
    if c == 3 and channels == 1:
        w = images.new_tensor(_LUMA).view(1, 3, *([1] * (images.ndim - 2)))
        return (images * w).sum(1, keepdim=True)
    raise ValueError(
        f"Images have {c} channels, the extractor takes {channels}; only 1 (grayscale) and 3 (RGB) channels are "
        "supported. Drop alpha channels or select the channel of interest first."
    )


class FeatureExtractor(nn.Module):
    """Base class: ``(N, C, *spatial)`` images in ``[-1, 1]`` -> ``(N, feature_dim)`` features.

    Subclasses set ``in_channels`` (what the network takes), ``spatial_dims`` (2 or 3), implement
    :meth:`_features` on preprocessed input and provide ``feature_dim`` and ``name`` (the cache key of real-set
    statistics: it must change whenever the weights or the preprocessing change).
    """

    in_channels: int = 3
    spatial_dims: int = 2
    range_tolerance: float = 0.05

    @property
    def name(self) -> str:
        """Identifier of network + weights + preprocessing, used as cache key."""
        raise NotImplementedError(f"{type(self).__name__} must define `name`.")

    @property
    def feature_dim(self) -> int:
        """Length ``D`` of the feature vectors."""
        raise NotImplementedError(f"{type(self).__name__} must define `feature_dim`.")

    @property
    def has_logits(self) -> bool:
        """Whether :meth:`features_and_logits` is available (needed by the Inception Score)."""
        return False

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Check and convert a batch to the network input.

        Input: float tensor ``(N, C, *spatial)`` with ``len(spatial) == spatial_dims``, ``C`` in {1, 3}, values in
        ``[-1, 1]`` (overshoot up to ``range_tolerance`` is clipped). Output: ``in_channels`` channels, then the
        subclass' own range mapping and resizing (:meth:`_prepare`).
        """
        x = to_channels(self._validate(images), self.in_channels)
        return self._prepare(x)

    def _validate(self, images: torch.Tensor) -> torch.Tensor:
        """Shape, dtype and ``[-1, 1]`` range checks; returns float32 values clipped to ``[-1, 1]``."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"`images` must be a torch.Tensor, got {type(images).__name__}.")
        if images.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{type(self).__name__} takes {self.spatial_dims}D batches (N, C, {'x, y' if self.spatial_dims == 2 else 'x, y, z'}),"
                f" got shape {tuple(images.shape)}. Use PerPlaneFeatures for 3D volumes with a 2D extractor."
            )
        if images.shape[0] == 0:
            raise ValueError("`images` is an empty batch.")
        x = images if images.dtype == torch.float32 else images.float()
        lo, hi = float(x.detach().amin()), float(x.detach().amax())
        tol = self.range_tolerance
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1 - tol or hi > 1 + tol:
            raise ValueError(
                f"{type(self).__name__} expects images scaled to [-1, 1], got values in [{lo:.4g}, {hi:.4g}]. "
                "Scale them first, e.g. monai.transforms.ScaleIntensity(minv=-1, maxv=1) or x / 127.5 - 1 for 8-bit."
            )
        if images.shape[1] not in (1, 3):
            raise ValueError(
                f"Images must have 1 (grayscale) or 3 (RGB) channels, got {images.shape[1]} (shape {tuple(images.shape)})."
            )
        return x.clamp(-1, 1) if lo < -1 or hi > 1 else x

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[-1, 1]`` input with ``in_channels`` channels to the network's input (default: unchanged)."""
        return x

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement `_features`.")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable features ``(N, feature_dim)``."""
        return self._features(self.preprocess(images))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and class logits in one pass (only for extractors with a classification head)."""
        raise TypeError(
            f"{type(self).__name__} has no classification head, so it cannot give the class logits that the Inception "
            "Score needs; use InceptionV3Features or MonaiNetworkFeatures of a classifier with `layer` set."
        )

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @torch.no_grad()
    def extract(
        self, images: torch.Tensor, batch_size: int = 32, with_logits: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Batched, gradient-free extraction in eval mode; returns float32 CPU tensors.

        Args:
            images: ``(N, C, *spatial)`` batch in ``[-1, 1]`` (any device; moved to the extractor's device).
            batch_size: chunk size.
            with_logits: also return the class logits (``(N, K)``).
        """
        was_training = self.training
        self.eval()
        feats, logits = [], []
        device = self._device()
        try:
            for start in range(0, images.shape[0], max(1, int(batch_size))):
                chunk = images[start : start + batch_size].to(device)
                if with_logits:
                    f, lg = self.features_and_logits(chunk)
                    logits.append(lg.float().cpu())
                else:
                    f = self(chunk)
                feats.append(f.float().cpu())
        finally:
            self.train(was_training)
        out = torch.cat(feats)
        return (out, torch.cat(logits)) if with_logits else out


# ---------------------------------------------------------------------------------------------------------------
# Inception-v3
# ---------------------------------------------------------------------------------------------------------------


def find_inception_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """Locate a local Inception-v3 weight file; never downloads.

    Search order: ``weights_path``; the file named by ``$MONAI_GAN_AUG_INCEPTION_WEIGHTS``;
    ``torch.hub.get_dir()/checkpoints/pt_inception-2015-12-05-*.pth`` (pytorch-fid, TF-FID compatible) and
    ``.../inception_v3_google-*.pth`` (torchvision ImageNet weights).

    Raises:
        FileNotFoundError: with the file names, the URLs to fetch them from on a connected machine and where to put
            them.
    """
    found = local_weights_file(weights_path, INCEPTION_ENV_VAR, INCEPTION_WEIGHT_PATTERNS, "Inception-v3 weights")
    if found is not None:
        return found
    ckpt_dir = hub_checkpoints_dir()
    raise FileNotFoundError(
        "Inception-v3 weights not found and they are never downloaded. On a machine with internet access fetch "
        "either https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth "
        "(TF-FID compatible, recommended) or https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth "
        f"(torchvision), copy it into {ckpt_dir}/ (the torch hub cache, keep the file name), or pass "
        f"weights_path=... / --inception-weights PATH, or set ${INCEPTION_ENV_VAR}=PATH. "
        "Use --extractor random for a weight-free smoke test."
    )


def _make_fid_block(base: type, pool: str) -> type:
    """Subclass of a torchvision Inception block whose pool branch uses the TF-FID pooling (``avg``: average
    without the zero padding, ``max``: 3x3 max pooling); the other branches are the block's own."""

    def _forward(self: Any, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = base._forward(self, x)
        pooled = F.max_pool2d(x, 3, 1, 1) if pool == "max" else F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        outputs[-1] = self.branch_pool(pooled)
        return outputs

    return type(f"FID{base.__name__}_{pool}", (base,), {"_forward": _forward})


def _patch_tf_fid_blocks(model: nn.Module) -> None:
    """Make torchvision's Inception3 compute what the TF FID graph computes (the pytorch-fid weight layout).

    The TF graph averages without the zero padding (``count_include_pad=False``) in the pool branches of Mixed_5*,
    Mixed_6b-e and Mixed_7b, and max-pools in the pool branch of Mixed_7c.
    """
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    classes = {
        InceptionA: _make_fid_block(InceptionA, "avg"),
        InceptionC: _make_fid_block(InceptionC, "avg"),
        InceptionE: _make_fid_block(InceptionE, "avg"),
    }
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7b"):
        block = getattr(model, name)
        block.__class__ = classes[type(block)]
    model.Mixed_7c.__class__ = _make_fid_block(InceptionE, "max")


class InceptionV3Features(FeatureExtractor):
    """Inception-v3 pool features (2048-D), the standard FID/KID/IS network, from a local weight file.

    Built with ``torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)`` and loaded
    from ``weights_path`` or the torch hub cache (:func:`find_inception_weights`). Two layouts are recognised by the
    classifier size: torchvision's ImageNet weights (1000 classes; auxiliary-classifier weights are dropped) and
    pytorch-fid's port of the TF FID graph (1008 classes), for which the pool branches are switched to the TF
    pooling so the features match published FID numbers.

    Preprocessing: ``[-1, 1]`` input (what the Inception weights were trained on, so no ImageNet mean/std), gray
    repeated to RGB, bilinear resize to 299x299 (``align_corners=False``, as pytorch-fid).

    Reference: Szegedy et al., "Rethinking the Inception Architecture", 2016; Heusel et al., FID, 2017.

    Args:
        weights_path: weight file (``state_dict``); ``None`` searches the hub cache / environment variable.
        resize: resize inputs to 299x299 (set ``False`` only for inputs already at that size).
    """

    in_channels = 3
    spatial_dims = 2
    input_size = (299, 299)

    def __init__(self, weights_path: str | os.PathLike | None = None, resize: bool = True) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        path = find_inception_weights(weights_path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or "fc.weight" not in state:
            raise ValueError(f"{path} is not an Inception-v3 state dict (no 'fc.weight'); got {type(state).__name__}.")
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        num_classes = int(state["fc.weight"].shape[0])
        self.tf_fid_layout = num_classes == 1008
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=num_classes)
        if self.tf_fid_layout:
            _patch_tf_fid_blocks(net)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path} does not match the torchvision Inception-v3 architecture: {e}") from e
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.resize = resize
        self.weights_file = path.name
        self._pool: torch.Tensor | None = None
        net.avgpool.register_forward_hook(self._keep_pool)

    def _keep_pool(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._pool = output

    @property
    def name(self) -> str:
        return f"inception_v3[{self.weights_file}]"

    @property
    def feature_dim(self) -> int:
        return 2048

    @property
    def has_logits(self) -> bool:
        return True

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        if isinstance(logits, tuple):  # training mode with aux head: never the case here, kept for safety
            logits = logits[0]
        pool, self._pool = self._pool, None
        return torch.flatten(pool, 1), logits  # type: ignore[arg-type]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool features ``(N, 2048)`` and class logits ``(N, 1000 or 1008)``."""
        return self._run(self.preprocess(images))

    def train(self, mode: bool = True) -> InceptionV3Features:
        """The network always stays in eval mode (batch-norm statistics and no auxiliary head)."""
        super().train(mode)
        self.net.eval()
        return self


# ---------------------------------------------------------------------------------------------------------------
# Any MONAI / torch network
# ---------------------------------------------------------------------------------------------------------------

_STATE_KEYS = ("state_dict", "model", "model_state_dict", "net", "network", "weights")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _file_digest(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}\0{st.st_mtime_ns}\0{st.st_size}".encode()).hexdigest()[:12]


def _module_digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


def _load_network(path: Path) -> nn.Module:
    """A TorchScript network file. Pickled ``nn.Module`` files are refused: unpickling them can execute arbitrary
    code; a state-dict file is refused with how to pass it (``network`` = the architecture, ``checkpoint`` = the file)."""
    from monai_gan_aug.utils.checkpoint_io import CheckpointError, UnsafeCheckpointError, load_checkpoint

    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    how = (
        "Pass the architecture as `network` (e.g. monai.networks.nets.resnet18(...)) and a state-dict file as "
        "`checkpoint` (torch.save(model.state_dict(), path)), or a TorchScript file as `network` "
        "(torch.jit.save(torch.jit.script(model), path))."
    )
    try:
        obj = load_checkpoint(path)  # weights_only=True: tells a state dict from a pickled module without running it
    except UnsafeCheckpointError as err:
        raise TypeError(
            f"{path} is not a TorchScript file but pickled Python objects ({', '.join(err.globals) or 'unknown'}; a "
            f"pickled nn.Module?), which are not loaded because unpickling them could execute arbitrary code. {how}"
        ) from None
    except CheckpointError as err:
        raise TypeError(f"{path} is neither a TorchScript file nor a torch.save file ({err}). {how}") from None
    raise TypeError(
        f"{path} holds a {type(obj).__name__} (a state dict?), not a TorchScript network. {how}"
    )


def _unwrap_state(state: Any, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(state, Mapping):
        inner = next((state[k] for k in _STATE_KEYS if k in state and isinstance(state[k], Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping):
        raise TypeError(f"{path} does not hold a state dict (got {type(state).__name__}).")
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            k = k.removeprefix(prefix)
        out[k] = v
    return out


class MonaiNetworkFeatures(FeatureExtractor):
    """Features from any network: a MONAI net, a torchvision model (with a state-dict file) or a TorchScript file.

    Medical feature networks (RadImageNet 2D ResNets, MedicalNet 3D ResNets, a classifier trained on the real data)
    give features that are more meaningful for grayscale medical images than ImageNet Inception. Typical use::

        net = monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=2)
        extractor = MonaiNetworkFeatures(net, checkpoint="resnet_10_23dataset.pth", input_transform="zscore",
                                         strict=False)  # MedicalNet weights: encoder only

    Args:
        network: ``nn.Module`` or path of a TorchScript file (pickled ``nn.Module`` files are refused: they could
            execute code; pass the architecture here and its state dict as ``checkpoint``).
        layer: name (``named_modules``) of the layer whose output are the features; ``None`` uses the network output.
            With a layer, the network output is taken as class logits (Inception Score).
        checkpoint: state-dict file loaded into ``network`` (``state_dict``/``model``/... wrappers and ``module.``
            prefixes are removed).
        strict: strict state-dict loading.
        pooling: how a ``(N, C, *spatial)`` output becomes ``(N, C)``: ``"avg"`` or ``"max"`` global pooling, or
            ``"flatten"``.
        in_channels: channels the network takes; inferred from its first convolution when ``None``.
        spatial_dims: 2 or 3; inferred from its first convolution when ``None``.
        input_size: resize inputs to this spatial size first (``None``: keep).
        input_transform: mapping of ``[-1, 1]`` to the network range: ``"none"`` (keep), ``"unit"`` (``[0, 1]``),
            ``"imagenet"`` (``[0, 1]`` then ImageNet mean/std, 3 channels), ``"zscore"`` (per image zero mean, unit
            variance, as MedicalNet).
        feature_dim: known feature length (skips the probe forward pass).
        name: cache name; default from the class, layer, pooling, transform and a weights digest.
    """

    def __init__(
        self,
        network: nn.Module | str | os.PathLike,
        layer: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        strict: bool = True,
        pooling: str = "avg",
        in_channels: int | None = None,
        spatial_dims: int | None = None,
        input_size: Sequence[int] | None = None,
        input_transform: str = "none",
        feature_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        digest = None
        if isinstance(network, (str, os.PathLike)):
            path = Path(network)
            if not path.is_file():
                raise FileNotFoundError(f"Network file {path} does not exist.")
            network = _load_network(path)
            digest = _file_digest(path)
        if not isinstance(network, nn.Module):
            raise TypeError(f"`network` must be an nn.Module or a file path, got {type(network).__name__}.")
        if checkpoint is not None:
            cpath = Path(checkpoint)
            if not cpath.is_file():
                raise FileNotFoundError(f"Checkpoint {cpath} does not exist.")
            state = _unwrap_state(torch.load(cpath, map_location="cpu", weights_only=True), cpath)
            result = network.load_state_dict(state, strict=strict)
            digest = _file_digest(cpath)
            self.load_report = result
        network.eval()
        for p in network.parameters():
            p.requires_grad_(False)
        self.net = network
        if pooling not in ("avg", "max", "flatten"):
            raise ValueError(f"`pooling` must be 'avg', 'max' or 'flatten', got {pooling!r}.")
        if input_transform not in ("none", "unit", "imagenet", "zscore"):
            raise ValueError(f"`input_transform` must be 'none', 'unit', 'imagenet' or 'zscore', got {input_transform!r}.")
        self.pooling = pooling
        self.input_transform = input_transform
        self.layer = layer
        conv = next((m for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
        if in_channels is None or spatial_dims is None:
            if conv is None:
                raise ValueError(
                    "Cannot infer `in_channels`/`spatial_dims` from the network (no nn.Conv2d/nn.Conv3d found, e.g. a "
                    "TorchScript module); pass them explicitly."
                )
            in_channels = conv.in_channels if in_channels is None else in_channels
            spatial_dims = (3 if isinstance(conv, nn.Conv3d) else 2) if spatial_dims is None else spatial_dims
        if in_channels not in (1, 3):
            raise ValueError(f"The network takes {in_channels} channels; only 1 or 3 are supported.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        if input_transform == "imagenet" and in_channels != 3:
            raise ValueError("input_transform='imagenet' needs a 3-channel network.")
        self.in_channels = int(in_channels)
        self.spatial_dims = int(spatial_dims)
        self.input_size = None if input_size is None else tuple(int(s) for s in input_size)
        if self.input_size is not None and len(self.input_size) != self.spatial_dims:
            raise ValueError(f"`input_size` {self.input_size} must have {self.spatial_dims} entries.")
        self._hooked: torch.Tensor | None = None
        if layer is not None:
            modules = dict(network.named_modules())
            if layer not in modules:
                names = [n for n in modules if n][:20]
                raise ValueError(f"Layer {layer!r} not found in the network; some available names: {names}.")
            modules[layer].register_forward_hook(self._keep)
        self._feature_dim = feature_dim
        self._digest = digest or _module_digest(network)
        self._name = name

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._hooked = output[0] if isinstance(output, (tuple, list)) else output

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return (
            f"monai[{type(self.net).__name__}:{self.layer or 'output'}:{self.pooling}:{self.input_transform}:"
            f"{self.input_size}:{self._digest}]"
        )

    @property
    def has_logits(self) -> bool:
        return self.layer is not None

    @property
    def feature_dim(self) -> int:
        if self._feature_dim is None:
            size = self.input_size or (64,) * self.spatial_dims
            probe = torch.zeros(1, self.in_channels, *size, device=self._device())
            with torch.no_grad():
                self._feature_dim = int(self._features(self._prepare(probe)).shape[1])
        return self._feature_dim

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
            x = F.interpolate(x, size=self.input_size, mode=mode, align_corners=False)
        if self.input_transform == "unit":
            x = (x + 1) / 2
        elif self.input_transform == "imagenet":
            shape = (1, 3) + (1,) * self.spatial_dims
            x = ((x + 1) / 2 - x.new_tensor(_IMAGENET_MEAN).view(shape)) / x.new_tensor(_IMAGENET_STD).view(shape)
        elif self.input_transform == "zscore":
            dims = tuple(range(1, x.ndim))
            x = (x - x.mean(dims, keepdim=True)) / x.std(dims, keepdim=True).clamp_min(1e-6)
        return x

    def _pool(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim == 2:
            return y
        if self.pooling == "flatten":
            return y.flatten(1)
        dims = tuple(range(2, y.ndim))
        return y.mean(dims) if self.pooling == "avg" else y.amax(dims)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._hooked = None
        out = self.net(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if self.layer is None:
            return self._pool(out), out
        feats, self._hooked = self._hooked, None
        if feats is None:
            raise RuntimeError(f"Layer {self.layer!r} was not executed by the network's forward pass.")
        return self._pool(feats), out

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features at ``layer`` and the network output as logits (``layer`` must be set)."""
        if self.layer is None:
            return super().features_and_logits(images)
        feats, logits = self._run(self.preprocess(images))
        if logits.ndim != 2:
            raise ValueError(f"The network output has shape {tuple(logits.shape)}, class logits (N, K) are needed.")
        return feats, logits

    def train(self, mode: bool = True) -> MonaiNetworkFeatures:
        """The wrapped network always stays in eval mode."""
        super().train(mode)
        self.net.eval()
        return self


# ---------------------------------------------------------------------------------------------------------------
# 3D volumes through 2D features
# ---------------------------------------------------------------------------------------------------------------


class PerPlaneFeatures(FeatureExtractor):
    """3D volumes through a 2D extractor: features of slices along each plane, averaged, planes concatenated.

    For every axis in ``planes`` (0 = x, 1 = y, 2 = z of the channel-first volume), ``n_slices`` slices evenly spaced
    over the central ``1 - 2 * margin`` of that axis are embedded by ``extractor2d`` and averaged; the per-plane
    vectors are concatenated, so ``feature_dim = len(planes) * extractor2d.feature_dim``. This is the "2.5D" way of
    computing FID/KID on volumes with 2D networks (e.g. Inception).

    Args:
        extractor2d: a 2D :class:`FeatureExtractor`.
        planes: axes to slice along.
        n_slices: slices per axis (fewer when the axis is shorter).
        margin: fraction of each axis skipped at both ends (often background).
        chunk: slices embedded per forward pass.
    """

    spatial_dims = 3

    def __init__(
        self,
        extractor2d: FeatureExtractor,
        planes: Sequence[int] = (0, 1, 2),
        n_slices: int = 8,
        margin: float = 0.1,
        chunk: int = 64,
    ) -> None:
        super().__init__()
        if not isinstance(extractor2d, FeatureExtractor) or extractor2d.spatial_dims != 2:
            raise TypeError("`extractor2d` must be a 2D FeatureExtractor.")
        planes = tuple(int(p) for p in planes)
        if not planes or any(p not in (0, 1, 2) for p in planes) or len(set(planes)) != len(planes):
            raise ValueError(f"`planes` must be distinct axes among (0, 1, 2), got {planes}.")
        if n_slices < 1:
            raise ValueError(f"`n_slices` must be >= 1, got {n_slices}.")
        if not 0 <= margin < 0.5:
            raise ValueError(f"`margin` must be in [0, 0.5), got {margin}.")
        self.extractor2d = extractor2d
        self.planes = planes
        self.n_slices = int(n_slices)
        self.margin = float(margin)
        self.chunk = int(chunk)
        self.in_channels = extractor2d.in_channels

    @property
    def name(self) -> str:
        return f"perplane{list(self.planes)}x{self.n_slices}m{self.margin}[{self.extractor2d.name}]"

    @property
    def feature_dim(self) -> int:
        return len(self.planes) * self.extractor2d.feature_dim

    def slice_indices(self, length: int) -> torch.Tensor:
        """Indices of the slices taken along an axis of ``length`` voxels."""
        lo, hi = self.margin * (length - 1), (1 - self.margin) * (length - 1)
        idx = torch.linspace(lo, hi, self.n_slices).round().long().unique()
        return idx.clamp(0, length - 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Only the shape/range checks; channel conversion and resizing are done by the 2D extractor per slice."""
        return self._validate(images)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        per_plane = []
        for axis in self.planes:
            idx = self.slice_indices(x.shape[2 + axis]).to(x.device)
            sl = x.index_select(2 + axis, idx).movedim(2 + axis, 1)  # (N, k, C, a, b)
            k = sl.shape[1]
            flat = sl.reshape(n * k, c, *sl.shape[3:])
            feats = torch.cat([self.extractor2d(flat[i : i + self.chunk]) for i in range(0, flat.shape[0], self.chunk)])
            per_plane.append(feats.view(n, k, -1).mean(1))
        return torch.cat(per_plane, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Cheap deterministic random network
# ---------------------------------------------------------------------------------------------------------------


class RandomConvFeatures(FeatureExtractor):
    """A small convolutional network with fixed random weights drawn from ``seed``: cheap, weight-free features.

    For unit tests, smoke checks, benchmarks and offline sanity checks only: random features separate gross
    differences (intensity, texture, structure) but are NOT a replacement for Inception or a medical network, and
    their FID values are not comparable with published numbers. Same seed and arguments give the same weights on
    every machine (``torch.Generator`` on the CPU).

    Architecture: ``depth`` stride-2 3x3 convolutions (widths ``width * 2**i``, capped at 256) with LeakyReLU(0.2),
    a 1x1 convolution to ``dim`` channels, global average pooling; He-normal weights, zero biases. Optional random
    linear head with ``num_classes`` outputs (smoke tests of the Inception Score only).

    Args:
        in_channels: 1 or 3 (inputs are converted, see :func:`to_channels`).
        dim: feature length.
        seed: weight seed.
        spatial_dims: 2 or 3.
        width: channels of the first convolution.
        depth: number of stride-2 convolutions.
        num_classes: size of the random classification head (0: none).
    """

    def __init__(
        self,
        in_channels: int = 1,
        dim: int = 64,
        seed: int = 0,
        spatial_dims: int = 2,
        width: int = 16,
        depth: int = 4,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"`in_channels` must be 1 or 3, got {in_channels}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        if dim < 1 or width < 1 or depth < 1 or num_classes < 0:
            raise ValueError("`dim`, `width` and `depth` must be >= 1 and `num_classes` >= 0.")
        self.in_channels, self.spatial_dims = int(in_channels), int(spatial_dims)
        self.dim, self.seed, self.width, self.depth, self.num_classes = int(dim), int(seed), int(width), int(depth), int(num_classes)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        layers: list[nn.Module] = []
        c = self.in_channels
        for i in range(self.depth):
            out = min(self.width * 2**i, 256)
            layers += [conv(c, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = out
        layers.append(conv(c, self.dim, 1))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(self.dim, self.num_classes) if self.num_classes else None
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                    m.bias.zero_()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def name(self) -> str:
        return (
            f"random_conv{self.spatial_dims}d[in={self.in_channels},dim={self.dim},width={self.width},"
            f"depth={self.depth},classes={self.num_classes},seed={self.seed}]"
        )

    @property
    def feature_dim(self) -> int:
        return self.dim

    @property
    def has_logits(self) -> bool:
        return self.head is not None

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=tuple(range(2, x.ndim)))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and the random head's logits (``num_classes > 0`` only)."""
        if self.head is None:
            return super().features_and_logits(images)
        f = self._features(self.preprocess(images))
        return f, self.head(f)
