# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Contracts every registered family keeps (issue 16), parametrised over the family registry
(:mod:`monai_gan_aug.engines.families`), so a new family is checked without editing this file.

* every bundle of a family: one training iteration at tiny sizes on the tiny demo dataset, then its inference
  workflow writing a synthetic set from that checkpoint (the per-bundle tests check each bundle's specifics,
  ``tests/bundles/test_model_zoo.py`` its layout, metadata and export);
* every objective, on that trained run: its phases name networks and optimizers the bundle builds, and every network
  and optimizer is used by a phase; ``generate`` through the generation workflow's own step is deterministic per seed
  (same seeds: identical; other seeds: different, or identical for objectives declaring ``seeded = False``; sample
  ``i`` the same alone as in a batch); its state survives a ``weights_only`` checkpoint round trip into a freshly
  built objective.

Sizes: :data:`TINY` (the model-zoo test's small networks) plus :data:`TINY_TRAIN` (training-only sizes), applied to
the ids a bundle's ``train.json`` (composed with its ``common.json``) has; a family whose size settings are named otherwise fails
:func:`test_bundle_trains_one_iteration_and_infers` on its parameter count, saying to add its names here.
"""

from __future__ import annotations

import copy
import io
import json
import math
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

_BUNDLE_TESTS = Path(__file__).resolve().parent / "bundles"
if str(_BUNDLE_TESTS) not in sys.path:
    sys.path.insert(0, str(_BUNDLE_TESTS))

from bundle_utils import REPO, run_config, tiny_demo  # noqa: E402
from test_model_zoo import TINY  # noqa: E402

from monai_gan_aug.engines.bundles import bundle_config_files, read_bundle_config  # noqa: E402
from monai_gan_aug.engines.families import bundle_infos, families, family, locate  # noqa: E402
from monai_gan_aug.losses.objectives import GanObjective  # noqa: E402

FAMILIES = families()
BUNDLES = sorted(b for fam in FAMILIES.values() for b in fam.bundles)

#: Training-only sizes and schedule, on top of :data:`TINY` (the values of the per-bundle tests).
TINY_TRAIN = {"batch_size": 2, "max_iterations": 1, "save_interval": 1, "sample_interval": 1, "num_workers": 0,
              "device": "cpu", "d_base_channels": 4, "receptive_field": 22, "pool_size": 3, "code_hidden_size": 16,
              "decoder_channels": 4, "sle_ratio_generator": 4, "sle_ratio_discriminator": 2, "layers_per_block": 1,
              "critic_channels": 4, "growth_rate": 4, "box_crop_size": 8, "images_per_phase": 4,
              "fidelity_interval": 1000, "fidelity_samples": 4}
#: The values of list-valued settings (``channels`` of a U-Net, ``critic_channels`` of a critic stack).
TINY_LISTS = {"channels": [4, 8], "critic_channels": [4, 8]}
#: Upper bound on the parameters of all networks of a tiny run (the bundles' defaults have millions).
MAX_TINY_PARAMETERS = 500_000
N_SAMPLES = 3


def _overrides(bundle: str, config_file: str, for_inference: bool = False) -> dict:
    """The tiny values of the settings ``config_file`` of ``bundle`` (composed with its ``common.json``) has,
    leaving network settings it leaves at ``None`` (derived, e.g. pggan_bbox's ``channels``) alone, and at inference
    those it reads from the trained checkpoint (``trained_setting``) and the training-only ones."""
    config = read_bundle_config(REPO / "bundles" / bundle, config_file)
    out = {}
    for key, value in {**TINY, **TINY_TRAIN}.items():
        if key not in config or (config[key] is None and key not in TINY_TRAIN):
            continue
        if for_inference and (key in TINY_TRAIN or "trained_setting" in str(config[key])):
            continue
        out[key] = TINY_LISTS[key] if isinstance(config[key], list) and key in TINY_LISTS else value
    return out


# ---------------------------------------------------------------------------------------------- tiny runs
@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tiny_demo(str(tmp_path_factory.mktemp("contracts_demo")))


class _Runs:
    """One tiny training iteration + inference per bundle, run once and shared by the tests of this module."""

    def __init__(self, demo: str, root: Path) -> None:
        self.demo, self.root, self.done = demo, root, {}

    def __call__(self, bundle: str) -> dict:
        if bundle not in self.done:
            out = self.root / bundle
            train = {**_overrides(bundle, "train.json"), "dataset_dir": self.demo, "output_dir": str(out)}
            train_wf = run_config(bundle, "train.json", train)
            infer = {**_overrides(bundle, "inference.json", for_inference=True), "dataset_dir": self.demo,
                     "output_dir": str(out), "synthetic_dir": str(out / "synthetic"), "batch_size": 2,
                     "num_samples": N_SAMPLES, "device": "cpu"}
            infer_wf = run_config(bundle, "inference.json", infer, workflow_type="infer")
            self.done[bundle] = {"out": out, "train": train_wf, "infer": infer_wf, "train_overrides": train}
        return self.done[bundle]


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _Runs(demo_dir, tmp_path_factory.mktemp("contracts"))
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------- the registry
def test_registry_is_discovered_from_the_bundles():
    infos = bundle_infos()
    gan_bundles = sorted(name for name, info in infos.items() if info.objective)
    assert BUNDLES == gan_bundles and len(BUNDLES) == len(set(BUNDLES))  # every GAN bundle in exactly one family
    assert "seg_unet_mix" in infos and "seg_unet_mix" not in BUNDLES  # not a GAN: no objective
    assert {"dcgan", "wgan_gp", "mask_dcgan", "pggan_bbox", "lesion_inpaint"} <= set(FAMILIES)
    # shared modules: the noise objectives (dcgan, wgan_gp) share noise.py, three families the DCGAN networks
    assert FAMILIES["dcgan"].objective_module == FAMILIES["wgan_gp"].objective_module
    assert FAMILIES["dcgan"].objective != FAMILIES["wgan_gp"].objective
    assert {f.name for f in FAMILIES.values() if f.networks_module.endswith(".dcgan")} == {"dcgan", "wgan_gp",
                                                                                           "mask_dcgan"}
    assert family("pggan") is not None and family("pggan").name == "pggan_bbox"  # alias of a module name
    assert family("alpha_wgan").name == "alpha_wgan_gp"
    with pytest.raises(ValueError, match="unknown family 'stylegan'"):
        family("stylegan")
    # every objective the package exports is some family's
    from monai_gan_aug.losses import objectives

    classes = [getattr(objectives, n) for n in objectives.__all__]
    concrete = {f"{c.__module__}.{c.__qualname__}" for c in classes  # the bases live in base.py
                if isinstance(c, type) and issubclass(c, GanObjective) and not c.__module__.endswith(".base")
                and not getattr(c, "generation_only", False)}  # TwoStageObjective chains two families' generators
    assert len(concrete) >= 9 and concrete <= {f.objective for f in FAMILIES.values()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_entry(name):
    fam = FAMILIES[name]
    assert issubclass(fam.objective_class, GanObjective)
    for bundle in fam.bundles:
        config = read_bundle_config(REPO / "bundles" / bundle, "train.json")
        generator = locate(config["network_def"]["_target_"])
        assert generator.__module__ == fam.networks_module and isinstance(generator, type)
        assert issubclass(generator, torch.nn.Module)
        assert locate(config["objective"]["_target_"]) is fam.objective_class


def test_registry_reads_a_new_bundle(tmp_path):
    """A bundle folder with a train.json is a family, without any registration; two bundles of one objective are
    one family; a bundle without an objective is not one."""
    import shutil

    for name in ("dcgan", "dcgan_small", "seg_unet_mix"):
        shutil.copytree(REPO / "bundles" / ("dcgan" if name.startswith("dcgan") else name) / "configs",
                        tmp_path / name / "configs")
    fams = families(tmp_path)
    assert list(fams) == ["dcgan"] and fams["dcgan"].bundles == ("dcgan", "dcgan_small")
    (tmp_path / "broken" / "configs").mkdir(parents=True)
    (tmp_path / "broken" / "configs" / "train.json").write_text(json.dumps({"objective": "not an object"}))
    with pytest.raises(ValueError, match="broken.*'objective'"):
        families(tmp_path)


def test_bundles_declare_what_they_serve(tmp_path):
    """The benefit runner's bundles and the MONAI Label app's default bundles come from the bundles' metadata, not
    from lists in the package; a malformed declaration is refused naming the file."""
    import shutil

    from monai_gan_aug.engines.families import FamilyRegistryError, bundle_services, label_bundles
    from monai_gan_aug.evaluation.benefit import bundle_tasks

    served = bundle_tasks()
    assert served["lesion_inpaint"] == ("detection",) and served["pix2pix"] == ("segmentation",)
    assert set(served["pggan_bbox"]) == {"detection", "classification"} and "dcgan" not in served
    assert bundle_services(REPO / "bundles" / "lesion_inpaint")["label_task"] == "boxes_to_lesions"
    assert bundle_services(REPO / "bundles" / "pix2pix")["quick"]["max_iterations"] == 2
    assert bundle_services(tmp_path) == {"downstream_tasks": (), "label_task": None, "quick": {}}  # no metadata
    assert label_bundles() == ("lesion_inpaint", "pggan_bbox", "pix2pix", "seg_unet_mix")  # the label app's defaults
    # a new bundle that declares a task is offered by the benefit runner's registry without any code change
    shutil.copytree(REPO / "bundles" / "dcgan" / "configs", tmp_path / "mine" / "configs")
    meta = tmp_path / "mine" / "configs" / "metadata.json"
    m = json.loads(meta.read_text())
    m["monai_gan_aug"] = {"downstream_tasks": ["classification"], "label_task": "boxes_to_image"}
    meta.write_text(json.dumps(m))
    info = bundle_infos(tmp_path)["mine"]
    assert info.downstream_tasks == ("classification",) and info.label_task == "boxes_to_image"
    assert label_bundles(tmp_path) == ("mine",)
    for bad in ({"downstream_tasks": "detection"}, {"label_task": 3}, {"quick": [1]}, ["detection"]):
        meta.write_text(json.dumps({**m, "monai_gan_aug": bad}))
        with pytest.raises(FamilyRegistryError, match=r"mine/configs/metadata.json.*'monai_gan_aug' must be"):
            bundle_services(tmp_path / "mine")


def test_docs_list_every_registered_bundle():
    """README.md's bundle table lists every bundle the registry knows (families and other bundles), and nothing
    else; the family guide and the engine doc point at the registry."""
    import re

    from monai_gan_aug.engines.families import other_bundles

    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `bundles/([A-Za-z0-9_]+)` \|", readme, flags=re.M))
    assert listed == set(BUNDLES) | set(other_bundles()), (sorted(listed), BUNDLES)
    guide = (REPO / "docs" / "adding_a_family.md").read_text()
    assert "monai_gan_aug.engines.families" in guide and "adding_a_family.md" in readme
    assert "docs/adding_a_family.md" in (REPO / "docs" / "engine.md").read_text()


# ---------------------------------------------------------------------------------------------- bundles
def _parameters(trainer) -> int:
    return sum(p.numel() for net in trainer.networks.values() for p in net.parameters())


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_trains_one_iteration_and_infers(bundle, runs):
    run = runs(bundle)
    trainer = run["train"].parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 1
    params = _parameters(trainer)
    assert params <= MAX_TINY_PARAMETERS, (
        f"{bundle}: {params} parameters at the 'tiny' settings; add the names of its size settings to TINY_TRAIN / "
        f"TINY_LISTS in {Path(__file__).name}"
    )
    losses = trainer.state.output["losses"]
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    assert (run["out"] / "checkpoints" / "checkpoint_1.pt").is_file()
    manifest = json.loads((run["out"] / "synthetic" / "manifest.json").read_text())
    assert manifest["checkpoint"].endswith("checkpoint_1.pt") and manifest["num_samples"] == len(manifest["files"]) > 0
    for rec in manifest["files"]:
        image = np.asarray(nib.load(run["out"] / "synthetic" / rec["image"]).dataobj, dtype=np.float32)
        assert image.size > 0 and np.isfinite(image).all() and image.min() >= -1 and image.max() <= 1, rec


# ---------------------------------------------------------------------------------------------- objectives
def _first_bundle(name: str) -> str:
    return FAMILIES[name].bundles[0]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_objective_phases_name_the_bundles_networks_and_optimizers(name, runs):
    trainer = runs(_first_bundle(name))["train"].parser.get_parsed_content("train#trainer")
    objective = trainer.objective
    assert isinstance(objective, FAMILIES[name].objective_class)
    phases = objective.phases()
    assert phases and len({p.name for p in phases}) == len(phases)
    for phase in phases:
        assert set(phase.networks) <= set(trainer.networks), (phase.name, phase.networks, sorted(trainer.networks))
        assert set(phase.optimizers) <= set(trainer.optimizers), (phase.name, phase.optimizers, sorted(trainer.optimizers))
    assert objective.generator_name in trainer.networks
    assert {n for p in phases for n in p.networks} == set(trainer.networks)  # no network left untrained
    assert {o for p in phases for o in p.optimizers} == set(trainer.optimizers)  # no optimizer left unstepped
    logged = trainer.state.output["losses"]
    for phase in phases:
        if phase.interval == 1:  # ran in iteration 1
            assert f"{phase.name}_loss" in logged, (phase.name, sorted(logged))


def _with_seeds(batch: dict, seeds, keep: int | None = None) -> dict:
    """A copy of a generation batch with other seeds (and only its first ``keep`` items)."""
    out = {}
    for key, value in batch.items():
        if keep is not None and isinstance(value, (torch.Tensor, list, tuple)) and len(value) == len(batch["seed"]):
            value = value[:keep]
        out[key] = value
    out["seed"] = torch.as_tensor(seeds[:keep] if keep is not None else seeds)
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_objective_generate_is_deterministic_per_seed(name, runs):
    infer = runs(_first_bundle(name))["infer"].parser
    evaluator = infer.get_parsed_content("evaluator")
    batch = next(iter(infer.get_parsed_content("dataloader")))
    seeds = [int(s) for s in torch.as_tensor(batch["seed"]).reshape(-1).tolist()]
    assert len(seeds) >= 2

    def generate(b):
        """The per-sample tensors of one generation step (image, and latents / label / cond where returned)."""
        n = len(b["seed"])
        results = []
        for global_seed in (12345, 54321):  # a sample must not depend on the global random stream
            torch.manual_seed(global_seed)
            out = evaluator._iteration(evaluator, b)
            results.append({k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim and len(v) == n})
        assert "image" in results[0]
        _assert_same_state(results[1], results[0])
        return results[0]

    same = generate(_with_seeds(batch, seeds))
    _assert_same_state(generate(_with_seeds(batch, seeds)), same)
    alone = generate(_with_seeds(batch, seeds, keep=1))  # sample 0 depends on seeds[0] (and its conditions) only
    for key, value in alone.items():
        torch.testing.assert_close(value[0], same[key][0], rtol=1e-5, atol=1e-5)
    other = generate(_with_seeds(batch, [s + 7919 for s in seeds]))
    assert {k: v.shape for k, v in other.items()} == {k: v.shape for k, v in same.items()}
    if evaluator.objective.seeded:
        for i in range(len(seeds)):  # e.g. mask_dcgan's class maps of an untrained generator: the latents differ
            assert any(not torch.equal(other[k][i], same[k][i]) for k in same), f"{name}: sample {i} ignores its seed"
        assert not torch.equal(other["image"], same["image"]) or "latents" in same, name
    else:  # declared a deterministic function of the conditions
        _assert_same_state(other, same)


def _assert_same_state(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(a), sorted(b))
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_objective_state_round_trips(name, runs):
    """The objective's state after an iteration, written and read as a checkpoint entry is (``torch.load`` with
    ``weights_only=True``), loads into a freshly built objective of the same config and reads back the same."""
    from monai.bundle import ConfigParser

    run = runs(_first_bundle(name))
    objective = run["train"].parser.get_parsed_content("train#trainer").objective
    state = objective.state_dict()
    if type(objective).state_dict is not GanObjective.state_dict:
        assert state, f"{name}: state_dict() is overridden but returned nothing after an iteration"
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(state), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files(REPO / "bundles" / _first_bundle(name), "train.json")])
    parser.update(run["train_overrides"])
    fresh = parser.get_parsed_content("objective", lazy=False)
    assert fresh is not objective and type(fresh) is type(objective)
    fresh.load_state_dict(loaded)
    _assert_same_state(fresh.state_dict(), state)
    assert [p.name for p in fresh.phases()] == [p.name for p in objective.phases()]
