# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""A trained generator as a self-contained MONAI bundle folder (model-zoo layout).

:func:`export_bundle` copies ``bundles/<name>`` (configs, docs, LICENSE) and adds

- ``models/model.pt``: the generator weights (the EMA copy when the run kept one) as ``{network name: state dict}``,
  plus the objective state inference needs (PGGAN: the stage / fade-in alpha) under ``"objective"``; tensors and
  plain values only, read with ``torch.load(weights_only=True)`` (:func:`monai_gan_aug.utils.load_checkpoint`);
- ``models/settings.json``: the settings that shape the generator, as training wrote them beside its checkpoints,
  and the provenance of the weights (checkpoint, sha256, iteration);
- ``models/box_sampler.json`` when the run has one (box-conditioned families);
- ``models/model.pt2``: the generator as a :func:`torch.export.export` program, with example inputs shaped as the
  metadata's ``network_data_format`` says.

``configs/inference.json`` of the copy (and its ``configs/common.json``, which every config of the bundle is
composed with: :func:`~monai_gan_aug.engines.bundles.bundle_config_files`) has the trained settings as the defaults of
its ``trained_setting(@checkpoint, key, default)`` entries and ``configs/metadata.json`` a ``network_data_format`` with
the trained shapes. Every bundle's ``inference.json`` looks for ``<bundle_root>/models/model.pt`` first (see
:func:`monai_gan_aug.engines.bundles.generator_checkpoint`), so the folder generates from anywhere, without a
``runs/`` folder.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_gan_aug.engines.bundles import (
    COMMON_CONFIG,
    MODEL_FILE,
    MODELS_DIR,
    bundle_config_files,
    bundle_root,
    read_bundle_config,
)
from monai_gan_aug.engines.generation import generator_state_dict, load_generator_weights
from monai_gan_aug.engines.utils import checkpoint_iteration, find_latest_checkpoint
from monai_gan_aug.utils.checkpoint_io import load_checkpoint
from monai_gan_aug.utils.settings import read_settings, write_settings

__all__ = [
    "export_bundle",
    "metadata_inputs",
    "check_network_data_format",
    "generator_forward_kwargs",
    "ExportError",
    "PROGRAM_FILE",
]

logger = logging.getLogger(__name__)

#: The exported program beside ``models/model.pt``.
PROGRAM_FILE = "model.pt2"
_SETTING_RE = re.compile(r"trained_setting\(@checkpoint, '(\w+)', ((?:[^\"\\]|\\.)*?)\)\"")


class ExportError(ValueError):
    """A bundle or run that cannot be exported (the message names the file or setting)."""


# ---------------------------------------------------------------------------------------------- metadata shapes
def _tensor_shape(spec: Mapping[str, Any], batch: int) -> tuple[int, ...]:
    from monai.bundle.scripts import _get_fake_spatial_shape

    spatial = _get_fake_spatial_shape(list(spec.get("spatial_shape") or []))
    return (batch, int(spec["num_channels"]), *spatial)


def metadata_inputs(
    meta: Mapping[str, Any], batch: int = 1, seed: int = 0, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Example inputs for a network, one per entry of ``network_data_format.inputs`` of ``meta`` (a metadata dict
    or its ``network_data_format``), in the order listed (the order of the network's ``forward`` arguments).

    Each is ``(batch, num_channels, *spatial_shape)`` in the entry's ``dtype`` (``spatial_shape`` patterns such as
    ``"*"`` or ``"16*n"`` are expanded by MONAI's rules, with p = n = any = 1); values are uniform in
    ``value_range`` when both ends are given (integers: ``low..high``), standard normal otherwise.
    """
    from monai.utils import get_equivalent_dtype

    fmt = meta.get("network_data_format", meta)
    inputs = fmt.get("inputs") if isinstance(fmt, Mapping) else None
    if not isinstance(inputs, Mapping) or not inputs:
        raise ExportError("the metadata has no network_data_format.inputs; list the network's inputs there.")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, spec in inputs.items():
        try:
            shape = _tensor_shape(spec, batch)
            dtype = get_equivalent_dtype(spec.get("dtype", "float32"), torch.Tensor)
        except (KeyError, TypeError, ValueError) as err:
            raise ExportError(f"network_data_format.inputs.{name} cannot be turned into a tensor: {err}") from err
        lo, hi = (list(spec.get("value_range") or []) + [None, None])[:2]
        if not dtype.is_floating_point:
            lo, hi = int(lo if lo is not None else 0), int(hi if hi is not None else 1)
            value = torch.randint(lo, hi + 1, shape, generator=gen, dtype=dtype)
        elif lo is not None and hi is not None:
            value = (torch.rand(shape, generator=gen) * (float(hi) - float(lo)) + float(lo)).to(dtype)
        else:
            value = torch.randn(shape, generator=gen).to(dtype)
        out[name] = value.to(device)
    return out


def check_network_data_format(
    network: torch.nn.Module,
    meta: Mapping[str, Any],
    forward_kwargs: Mapping[str, Any] | None = None,
    batch: int = 1,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """What ``monai.bundle.verify_net_in_out`` checks, for networks with several inputs (latent, condition maps,
    class): runs ``network`` (in eval mode, without gradients) on :func:`metadata_inputs` and checks the output
    against ``network_data_format.outputs.pred``: channels, dtype, spatial shape (when the metadata gives numbers)
    and value range (when both ends are given). Returns the output; raises :class:`ExportError` naming the field."""
    from monai.bundle.scripts import _get_fake_spatial_shape
    from monai.utils import get_equivalent_dtype

    fmt = meta.get("network_data_format", meta)
    pred = (fmt.get("outputs") or {}).get("pred") if isinstance(fmt, Mapping) else None
    if not isinstance(pred, Mapping):
        raise ExportError("the metadata has no network_data_format.outputs.pred.")
    inputs = metadata_inputs(fmt, batch=batch, device=device)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(*inputs.values(), **dict(forward_kwargs or {}))
    except Exception as err:
        shapes = {k: tuple(v.shape) for k, v in inputs.items()}
        raise ExportError(
            f"{type(network).__name__} does not run on the inputs network_data_format describes {shapes}: "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        network.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"{type(network).__name__} returned {type(out).__name__}, not a tensor.")
    if out.shape[1] != int(pred["num_channels"]):
        raise ExportError(f"output channels {out.shape[1]} != network_data_format.outputs.pred.num_channels "
                          f"{pred['num_channels']}.")
    dtype = get_equivalent_dtype(pred.get("dtype", "float32"), torch.Tensor)
    if out.dtype != dtype:
        raise ExportError(f"output dtype {out.dtype} != network_data_format.outputs.pred.dtype {pred.get('dtype')}.")
    spatial = list(pred.get("spatial_shape") or [])
    if spatial and all(isinstance(s, int) for s in spatial):
        want = tuple(_get_fake_spatial_shape(spatial))
        if tuple(out.shape[2:]) != want:
            raise ExportError(f"output spatial shape {tuple(out.shape[2:])} != network_data_format.outputs.pred."
                              f"spatial_shape {list(want)}.")
    lo, hi = (list(pred.get("value_range") or []) + [None, None])[:2]
    if lo is not None and hi is not None and out.numel():
        tol = 1e-4 * max(1.0, abs(float(hi) - float(lo)))
        if float(out.min()) < float(lo) - tol or float(out.max()) > float(hi) + tol:
            raise ExportError(f"output values [{float(out.min()):.4g}, {float(out.max()):.4g}] leave "
                              f"network_data_format.outputs.pred.value_range [{lo}, {hi}].")
    return out


class _WithKwargs(torch.nn.Module):
    """``network(*inputs, **kwargs)`` with fixed keyword arguments (e.g. the PGGAN's stage and alpha), so the
    exported program takes the metadata's inputs only."""

    def __init__(self, network: torch.nn.Module, kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.network = network
        self.kwargs = dict(kwargs)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*inputs, **self.kwargs)


def generator_forward_kwargs(network: torch.nn.Module, objective_state: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of the generator's ``forward`` that come from the objective state, not from the data:
    the PGGAN's growth ``stage`` and fade-in ``alpha`` of the checkpoint (the networks were trained at those)."""
    params = inspect.signature(network.forward).parameters
    state = dict(objective_state or {})
    out: dict[str, Any] = {}
    if "stage" in params and "stage" in state:
        out["stage"] = int(state["stage"])
    if "alpha" in params and "alpha" in state:
        out["alpha"] = float(state["alpha"])
    return out


# ---------------------------------------------------------------------------------------------- export
def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _generator_weights(state: Any, checkpoint: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{network name: state dict}`` of every generator network (name starting with ``generator``) a checkpoint
    holds; the EMA copy where there is one."""
    if not isinstance(state, Mapping):
        raise ExportError(f"checkpoint {checkpoint} is not a dict of weights (got {type(state).__name__}).")
    if isinstance(state.get("networks"), Mapping):
        names = sorted({k.split(".", 1)[0] for k in state["networks"] if k.startswith("generator")})
    else:  # an exported models/model.pt, or a plain state dict
        names = [k for k, v in state.items() if k.startswith("generator") and isinstance(v, Mapping)] or ["generator"]
    weights = {n: generator_state_dict(state, n) for n in names}
    weights = {n: sd for n, sd in weights.items() if sd}
    if not weights:
        raise ExportError(f"checkpoint {checkpoint} holds no generator weights (no network named 'generator...').")
    return weights


def _set_trained_defaults(text: str, settings: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``inference.json`` text with the default of every ``trained_setting(@checkpoint, key, default)`` whose key
    training wrote replaced by the trained value (a Python literal); the keys replaced."""
    done: list[str] = []

    def repl(m: re.Match) -> str:
        key = m.group(1)
        if key not in settings:
            return m.group(0)
        done.append(key)
        literal = json.dumps(repr(settings[key]))[1:-1]  # a Python literal, escaped for a JSON string
        return f"trained_setting(@checkpoint, '{key}', {literal})\""

    return _SETTING_RE.sub(repl, text), done


_INPUT_CHANNELS = {"image": "in_channels", "cond": "cond_channels", "condition": "cond_channels"}


def _trained_data_format(fmt: Mapping[str, Any], parser: Any) -> dict[str, Any]:
    """``network_data_format`` with the input shapes of the trained settings resolved by the exported
    ``inference.json`` (latent length, image size, channels, classes). The outputs are filled in from a forward
    pass by :func:`export_bundle`."""

    def cfg(key: str) -> Any:
        return parser.get_parsed_content(key) if key in parser else None

    fmt = copy.deepcopy(dict(fmt))
    dims = int(cfg("spatial_dims") or 2)
    size = cfg("patch_size") or cfg("image_size")
    inputs: dict[str, Any] = {}
    for name, spec in fmt["inputs"].items():
        spec = dict(spec)
        if spec.get("format") == "latent":
            length = cfg("latent_size") or cfg("noise_size")
            if length:
                spec["num_channels"] = int(length)
            if spec.get("spatial_shape"):
                spec["spatial_shape"] = [1] * dims
        elif spec.get("format") == "labels" and cfg("num_classes"):
            spec["value_range"] = [0, int(cfg("num_classes")) - 1]
        else:
            key = _INPUT_CHANNELS.get(name)
            channels = cfg(key) if key else None
            if channels is not None and int(channels) == 0:
                continue  # an unconditional network: the input is not used
            if channels is not None:
                spec["num_channels"] = int(channels)
            if spec.get("type") == "image" and size:
                spec["spatial_shape"] = [int(size)] * dims
        inputs[name] = spec
    fmt["inputs"] = inputs
    return fmt


def export_bundle(
    bundle: str | os.PathLike,
    out: str | os.PathLike,
    run_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    overwrite: bool = False,
    program: bool = True,
) -> Path:
    """Write a self-contained MONAI bundle folder for a trained generator.

    Args:
        bundle: a bundle name (``bundles/<name>`` of this repository) or a bundle folder.
        out: the folder to write (must not exist or be empty, unless ``overwrite``).
        run_dir: the training run (its ``checkpoints/`` folder is searched for the newest checkpoint); default
            ``runs/<name>``.
        checkpoint: a checkpoint file (default: the newest of ``run_dir``).
        overwrite: replace ``out`` when it holds an earlier export (a folder with ``configs/metadata.json``).
        program: also write ``models/model.pt2`` (:func:`torch.export.export`).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError / FileNotFoundError: no checkpoint, a bundle that is not a generator, an ``out`` folder that
            holds other files, a generator that does not run on the shapes of its metadata.
    """
    from monai.bundle import ConfigParser

    src = bundle_root(bundle)
    name = src.name
    if not (src / "configs" / "inference.json").is_file() or "objective" not in read_bundle_config(src, "inference.json"):
        raise ExportError(
            f"{src}: not a generator bundle (its configs/inference.json has no 'objective'); export_bundle writes "
            "generator bundles. A MONAI segmentation bundle such as seg_unet_mix already trains into "
            "<bundle>/models/model.pt."
        )
    if checkpoint is None:
        run = Path(run_dir) if run_dir is not None else Path("runs") / name
        found = find_latest_checkpoint(run / "checkpoints")
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint_<iteration>.pt in {run / 'checkpoints'}: train the bundle first (configs/train.json "
                "--output_dir RUN) and pass --run_dir RUN, or pass --checkpoint PATH."
            )
        checkpoint = found
    ckpt = Path(checkpoint).resolve()
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist.")
    run = Path(run_dir).resolve() if run_dir is not None else ckpt.parent.parent

    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        if not overwrite:
            raise ExportError(f"{dest} is not empty; pass another --out or overwrite=True (--overwrite).")
        if not (dest / "configs" / "metadata.json").is_file():
            raise ExportError(f"{dest} is not an exported bundle (no configs/metadata.json); nothing was removed.")
        shutil.rmtree(dest)
    state = load_checkpoint(ckpt)  # weights_only: a file holding code is refused
    weights = _generator_weights(state, ckpt)
    settings = read_settings(ckpt)
    objective_state = state.get("objective") if isinstance(state.get("objective"), Mapping) else None

    tmp = dest.with_name(f".{dest.name}.exporting")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__", MODELS_DIR, "*.pyc"))
    models = tmp / MODELS_DIR
    models.mkdir()
    model_file = models / MODEL_FILE
    torch.save({**weights, **({"objective": dict(objective_state)} if objective_state else {})}, model_file)
    load_checkpoint(model_file)  # what inference does: it must read back with weights_only=True
    iteration = checkpoint_iteration(ckpt)
    write_settings(models, settings, extra={"exported_from": {
        "bundle": name, "checkpoint": str(ckpt), "checkpoint_sha256": _file_sha256(ckpt), "iteration": iteration,
        "networks": sorted(weights), "ema": isinstance(state.get("ema"), Mapping) and bool(state["ema"]),
    }})
    if (run / "box_sampler.json").is_file():
        shutil.copy2(run / "box_sampler.json", models / "box_sampler.json")

    inference = tmp / "configs" / "inference.json"
    replaced: list[str] = []
    for config in (tmp / "configs" / COMMON_CONFIG, inference):  # the trained defaults, wherever they are set
        if config.is_file():
            text, done = _set_trained_defaults(config.read_text(), settings)
            config.write_text(text)
            replaced += done
    missing = sorted(set(settings) - set(replaced))
    if missing:
        logger.info("export: settings %s are not read by %s's inference.json (kept in models/settings.json).",
                    missing, name)

    # the generator as inference builds it, with the exported weights
    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files(tmp, "inference.json")])
    parser["bundle_root"] = str(tmp)
    parser["checkpoint"] = str(model_file)
    parser["device"] = "$torch.device('cpu')"
    net_name = parser.get_parsed_content("evaluator#network_name") if "evaluator#network_name" in parser else "generator"
    network = parser.get_parsed_content("network_def", lazy=False)
    gen_settings = parser.get_parsed_content("generator_settings") if "generator_settings" in parser else None
    load_generator_weights(network, str(model_file), name=net_name, settings=gen_settings)
    network.eval()
    kwargs = generator_forward_kwargs(network, objective_state)

    meta_file = tmp / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    fmt = _trained_data_format(meta["network_data_format"], parser)
    with torch.no_grad():
        sample = network(*metadata_inputs(fmt).values(), **kwargs)
    pred = dict(fmt["outputs"]["pred"])
    pred["num_channels"], pred["spatial_shape"] = int(sample.shape[1]), [int(s) for s in sample.shape[2:]]
    fmt["outputs"] = {**fmt["outputs"], "pred": pred}
    meta["network_data_format"] = fmt
    meta_file.write_text(json.dumps(meta, indent=4) + "\n")
    check_network_data_format(network, meta, kwargs)

    if program:
        module = _WithKwargs(network, kwargs) if kwargs else network
        example = tuple(metadata_inputs(meta).values())
        try:
            exported = torch.export.export(module, example)
        except Exception as err:
            raise ExportError(f"torch.export could not export {type(network).__name__} of {name}: "
                              f"{type(err).__name__}: {err}") from err
        torch.export.save(exported, str(models / PROGRAM_FILE))

    readme = tmp / "docs" / "README.md"
    if readme.is_file():
        shown = {k: settings[k] for k in sorted(settings)}
        readme.write_text(readme.read_text().rstrip() + "\n\n## This export\n\n"
                          f"Exported by `python -m monai_gan_aug.export` from `{ckpt.name}` (iteration {iteration}) "
                          f"of bundle `{name}`: `models/model.pt` (weights of {', '.join(sorted(weights))}"
                          f"{', EMA' if isinstance(state.get('ema'), Mapping) and state['ema'] else ''}), "
                          f"`models/settings.json` (trained settings and provenance)"
                          f"{', `models/model.pt2` (torch.export program)' if program else ''}. "
                          f"Trained settings: `{json.dumps(shown)}`.\n")
    if dest.exists():
        dest.rmdir()
    tmp.replace(dest)
    logger.info("exported %s (%s) to %s", name, ckpt, dest)
    return dest
