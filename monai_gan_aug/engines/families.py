# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The family registry (issue 16): which GAN families exist, discovered from the bundles rather than listed by hand.

A *family* is one objective class (:class:`~monai_gan_aug.losses.objectives.GanObjective` subclass) and the bundles
whose ``configs/train.json`` trains it. Everything is read from ``bundles/*/configs/train.json`` as training sees it,
composed with the bundle's ``configs/common.json`` (:func:`~monai_gan_aug.engines.bundles.read_bundle_config`):

* the objective: the ``_target_`` of the ``objective`` id;
* the networks: the ``_target_`` of ``network_def`` (the generator: the family's *networks module* is the module
  that defines its class) and of every entry of ``networks`` (``"@id"`` references are followed);
* the name: the bundle folder's name (the alphabetically first one when several bundles train the same objective
  class, which then all belong to that family);
* aliases: the short names of the family's objective module (under ``monai_gan_aug.losses.objectives``) and
  networks module (under ``monai_gan_aug.networks.nets``) when no other family uses that module and no family has
  that name, e.g. ``pggan`` for ``pggan_bbox`` and ``alpha_wgan`` for ``alpha_wgan_gp`` (the names the benchmarks use).

What a bundle *serves* is declared in its ``configs/metadata.json``, under the key ``"monai_gan_aug"`` (read by
:func:`bundle_services`; every entry optional):

* ``downstream_tasks``: the tasks of the "does it help?" protocol its synthetic sets serve (``detection``,
  ``segmentation``, ``classification``; ``python -m monai_gan_aug.benefit`` offers the bundle for these);
* ``label_task``: the MONAI Label task kind that serves it (``mask_to_image``, ``boxes_to_image``,
  ``boxes_to_lesions``, ``segmentation``; the label app serves such bundles by default);
* ``quick``: ``train.json`` overrides of a smoke run (tiny networks, a few iterations: ``benefit --quick``).

Bundles whose ``train.json`` has no ``objective`` (``seg_unet_mix``: a segmentation network trained on a synthetic
mix) are not families; :func:`other_bundles` lists them.

    >>> from monai_gan_aug.engines.families import families
    >>> fam = families()["pggan_bbox"]
    >>> fam.objective, fam.networks_module, fam.bundles, fam.aliases
    ('monai_gan_aug.losses.objectives.pggan.PGGANBoxObjective', 'monai_gan_aug.networks.nets.pggan', ('pggan_bbox',), ('pggan',))

A new family needs no registration: adding ``bundles/<name>/configs/train.json`` with an ``objective`` is enough
(see ``docs/adding_a_family.md``).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_gan_aug.engines.bundles import _REPO_BUNDLES, read_bundle_config

__all__ = ["Family", "BundleInfo", "FamilyRegistryError", "SERVICES_KEY", "bundle_infos", "bundle_services", "families",
           "family", "label_bundles", "other_bundles", "locate"]

OBJECTIVES_PACKAGE = "monai_gan_aug.losses.objectives"
NETS_PACKAGE = "monai_gan_aug.networks.nets"
#: The key of a bundle's ``configs/metadata.json`` that says what the bundle serves (module docstring).
SERVICES_KEY = "monai_gan_aug"


class FamilyRegistryError(ValueError):
    """A bundle's ``train.json`` cannot be read into the registry, or a family name is unknown."""


def locate(dotted: str) -> Any:
    """The object a fully qualified ``_target_`` names (``package.module.Class``), imported."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise FamilyRegistryError(f"cannot import {dotted!r}: use a fully qualified _target_ (package.module.Class).")


def _qualified(obj: Any) -> str:
    """``module.qualname`` of the class (or function) where it is defined, not where it is re-exported."""
    return f"{obj.__module__}.{obj.__qualname__}"


@dataclass(frozen=True)
class BundleInfo:
    """What the registry reads from one bundle's ``configs/train.json``.

    Attributes:
        name: the bundle folder's name.
        path: the bundle folder.
        objective: the objective class where it is defined (``module.Class``), ``None`` for a bundle without one.
        network_def: the ``network_def`` class where it is defined (the generator of a GAN bundle).
        networks: network role (key of ``networks``) -> class where it is defined; ``{}`` without a ``networks`` id.
        downstream_tasks: the benefit-protocol tasks its synthetic sets serve (metadata, :func:`bundle_services`).
        label_task: the MONAI Label task kind serving it, or ``None`` (metadata).
        quick: ``train.json`` overrides of a smoke run (metadata).
    """

    name: str
    path: Path
    objective: str | None
    network_def: str | None
    networks: Mapping[str, str]
    downstream_tasks: tuple[str, ...] = ()
    label_task: str | None = None
    quick: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """One GAN family of the registry.

    Attributes:
        name: the family's name (its bundle's folder name).
        objective: the objective class where it is defined (``module.Class``).
        networks_module: the module defining the generator (``network_def``) class.
        network_modules: every module defining one of the family's networks (generator, critics, encoders).
        bundles: the bundle folders training this objective class.
        aliases: other names of the family (see the module docstring).
    """

    name: str
    objective: str
    networks_module: str
    network_modules: tuple[str, ...]
    bundles: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def objective_module(self) -> str:
        return self.objective.rpartition(".")[0]

    @property
    def objective_class(self) -> type:
        """The objective class, imported."""
        return locate(self.objective)

    def bundle_paths(self, root: str | os.PathLike | None = None) -> tuple[Path, ...]:
        base = Path(root) if root is not None else _REPO_BUNDLES
        return tuple(base / b for b in self.bundles)

    def names(self) -> tuple[str, ...]:
        """The name and the aliases."""
        return (self.name, *self.aliases)


def _target(config: Mapping[str, Any], value: Any, bundle: str, what: str) -> str | None:
    """The ``_target_`` of ``value``: an inline ``{"_target_": ...}`` or an ``"@id"`` reference to one."""
    seen = set()
    while isinstance(value, str) and value.startswith("@") and value not in seen:
        seen.add(value)
        value = config.get(value[1:])
    if isinstance(value, Mapping) and isinstance(value.get("_target_"), str):
        return value["_target_"]
    if value is None:
        return None
    raise FamilyRegistryError(
        f"bundles/{bundle}/configs/train.json (composed with common.json): {what} is not a {{'_target_': ...}} object "
        "(or an '@id' of one); the family registry reads the classes from there."
    )


def bundle_services(path: str | os.PathLike) -> dict[str, Any]:
    """The ``"monai_gan_aug"`` section of ``<path>/configs/metadata.json`` (module docstring), checked:
    ``{"downstream_tasks": tuple, "label_task": str | None, "quick": dict}``; empty values without a metadata file
    or section.

    Raises:
        FamilyRegistryError: an unreadable metadata file or a section of the wrong shape, naming the file.
    """
    meta = Path(path) / "configs" / "metadata.json"
    out: dict[str, Any] = {"downstream_tasks": (), "label_task": None, "quick": {}}
    if not meta.is_file():
        return out
    try:
        section = json.loads(meta.read_text()).get(SERVICES_KEY, {})
    except (OSError, ValueError, AttributeError) as e:
        raise FamilyRegistryError(f"{meta}: cannot read the bundle's metadata ({e}).") from e
    get = section.get if isinstance(section, Mapping) else {}.get
    tasks, label, quick = get("downstream_tasks", []), get("label_task"), get("quick", {})
    if not isinstance(section, Mapping) or not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks) \
            or not isinstance(label, (str, type(None))) or not isinstance(quick, Mapping):
        raise FamilyRegistryError(
            f"{meta}: {SERVICES_KEY!r} must be {{'downstream_tasks': [str, ...], 'label_task': str, 'quick': {{...}}}} "
            f"(each optional), got {section!r}."
        )
    return {"downstream_tasks": tuple(tasks), "label_task": label, "quick": dict(quick)}


def label_bundles(root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The bundle folders of ``root`` (default: the repository's ``bundles/``) whose metadata names a ``label_task``:
    the ones the MONAI Label app serves by default, in name order."""
    base = Path(root) if root is not None else _REPO_BUNDLES
    if not base.is_dir():
        return ()
    return tuple(p.name for p in sorted(base.iterdir()) if (p / "configs").is_dir() and bundle_services(p)["label_task"])


def _read_bundle(path: Path) -> BundleInfo:
    train = path / "configs" / "train.json"
    try:
        config = read_bundle_config(path, "train.json")  # composed with configs/common.json, as training runs it
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise FamilyRegistryError(f"{train}: cannot read the bundle's training config ({e}).") from e
    name = path.name
    objective = _target(config, config.get("objective"), name, "'objective'")
    network_def = _target(config, config.get("network_def"), name, "'network_def'")
    networks = {}
    if isinstance(config.get("networks"), Mapping):
        for role, value in config["networks"].items():
            target = _target(config, value, name, f"'networks#{role}'")
            if target is not None:
                networks[str(role)] = _qualified(locate(target))
    return BundleInfo(
        name=name,
        path=path,
        objective=_qualified(locate(objective)) if objective else None,
        network_def=_qualified(locate(network_def)) if network_def else None,
        networks=networks,
        **bundle_services(path),
    )


def bundle_infos(root: str | os.PathLike | None = None) -> dict[str, BundleInfo]:
    """Every bundle folder of ``root`` (default: the repository's ``bundles/``) with a ``configs/train.json``, by name."""
    base = Path(root) if root is not None else _REPO_BUNDLES
    if not base.is_dir():
        return {}
    return {p.name: _read_bundle(p) for p in sorted(base.iterdir()) if (p / "configs" / "train.json").is_file()}


def _module(dotted_class: str) -> str:
    return dotted_class.rpartition(".")[0]


def families(root: str | os.PathLike | None = None) -> dict[str, Family]:
    """The registered families by name, in name order (see the module docstring for how they are found)."""
    infos = [info for info in bundle_infos(root).values() if info.objective]
    by_objective: dict[str, list[BundleInfo]] = {}
    for info in infos:
        by_objective.setdefault(info.objective, []).append(info)
    drafts = []
    for objective, members in by_objective.items():
        members = sorted(members, key=lambda b: b.name)
        generators = {_module(b.network_def) for b in members if b.network_def}
        if len(generators) != 1:
            raise FamilyRegistryError(
                f"bundles {[b.name for b in members]} train {objective} but their network_def classes come from "
                f"{sorted(generators) or 'nowhere'}; a family has one generator module."
            )
        modules = sorted({_module(c) for b in members for c in b.networks.values()} | generators)
        drafts.append((members[0].name, objective, generators.pop(), tuple(modules), tuple(b.name for b in members)))
    names = {d[0] for d in drafts}
    # short module names unique to one family: its aliases
    owners: dict[str, set[str]] = {}
    for name, objective, _, modules, _ in drafts:
        for module in (_module(objective), *modules):
            package, _, short = module.rpartition(".")
            if package in (OBJECTIVES_PACKAGE, NETS_PACKAGE):
                owners.setdefault(short, set()).add(name)
    out = {}
    for name, objective, networks_module, modules, bundles in sorted(drafts):
        aliases = tuple(sorted(s for s, o in owners.items() if o == {name} and s not in names))
        out[name] = Family(name, objective, networks_module, modules, bundles, aliases)
    return out


def family(name: str, root: str | os.PathLike | None = None) -> Family:
    """The family called ``name`` (its name or one of its aliases)."""
    registered = families(root)
    for fam in registered.values():
        if name in fam.names():
            return fam
    known = sorted(n for fam in registered.values() for n in fam.names())
    raise FamilyRegistryError(f"unknown family {name!r}; registered: {', '.join(known)}.")


def other_bundles(root: str | os.PathLike | None = None) -> dict[str, BundleInfo]:
    """Bundles that train no GAN objective (e.g. ``seg_unet_mix``), by name."""
    return {name: info for name, info in bundle_infos(root).items() if not info.objective}
