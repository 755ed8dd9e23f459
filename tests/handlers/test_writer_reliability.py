# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""SyntheticWriter reliability (issue #13, points 6 and 7): a killed run leaves a manifest of exactly the files on
disk and is resumed to the same files as an uninterrupted run; --overwrite leaves no stale file and never deletes
files it did not write; a set that does not fit on the disk is refused before anything is written."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from torch.utils.data import DataLoader

from monai_gan_aug.engines.generation import GanGenerationEvaluator, SeedDataset
from monai_gan_aug.handlers import write_synthetic_set
from monai_gan_aug.handlers import writer as writer_module
from monai_gan_aug.handlers.writer import DiskSpaceError, SyntheticWriter
from monai_gan_aug.losses.objectives import DCGANObjective
from monai_gan_aug.networks.nets import DCGANGenerator

LATENT = 8


class Crash:
    """Raises after ``after`` batches, as a kill between two batches would stop the run."""

    def __init__(self, after: int) -> None:
        self.after = after

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.iteration >= self.after:
            raise KeyboardInterrupt("killed")


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    torch.manual_seed(0)
    net = DCGANGenerator(spatial_dims=2, latent_size=LATENT, out_channels=1, image_size=16, base_channels=8)
    ckpt = tmp_path_factory.mktemp("ckpt") / "generator.pt"
    torch.save(net.state_dict(), ckpt)
    return net, str(ckpt)


def generate(folder, generator, n=10, seed=7, batch_size=2, handlers=(), checkpoint=None, **writer_kwargs):
    net, ckpt = generator
    writer = SyntheticWriter(str(folder), formats=("nifti", "png"), checkpoint=checkpoint or ckpt,
                             config_hash="cfg-1", **writer_kwargs)
    loader = DataLoader(SeedDataset(n, seed), batch_size=batch_size, shuffle=False, num_workers=0)
    evaluator = GanGenerationEvaluator("cpu", loader, net, DCGANObjective(latent_size=LATENT, latent_spatial=2),
                                       handlers=[writer, *handlers])
    evaluator.run()
    return writer, evaluator


def on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for sub in ("images", "labels") for p in (folder / sub).glob("*")}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def listed(folder: Path) -> set[str]:
    return {rec[k] for rec in manifest(folder)["files"] for k in ("image", "png", "label", "yolo") if k in rec}


def contents(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in on_disk(folder)}


def snapshot(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def full(generator, tmp_path_factory):
    """An uninterrupted run of 10 samples: the reference every resumed set must equal."""
    folder = tmp_path_factory.mktemp("full") / "syn"
    generate(folder, generator)
    return folder


def test_uninterrupted_set(full):
    m = manifest(full)
    assert m["complete"] is True and m["num_samples"] == m["planned_samples"] == 10 and m["seed"] == 7
    assert len(m["checkpoint_sha256"]) == 64 and m["config_hash"] == "cfg-1" and m["formats"] == ["nifti", "png"]
    assert [r["seed"] for r in m["files"]] == list(range(7, 17)) and [r["index"] for r in m["files"]] == list(range(10))
    assert listed(full) == on_disk(full) and len(on_disk(full)) == 20
    datalist = json.loads((full / "datalist.json").read_text())["training"]
    assert [d["image"] for d in datalist] == [f"images/syn_{i:06d}.nii.gz" for i in range(10)]
    assert all("index" not in d and "png" not in d for d in datalist)
    assert not (full / ".writing").exists() and not list(full.glob(".*.tmp"))


def test_killed_run_leaves_exact_manifest_and_resumes_to_the_same_files(generator, full, tmp_path, caplog):
    folder = tmp_path / "syn"
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator, handlers=[Crash(after=3)])
    m = manifest(folder)
    assert m["complete"] is False and m["num_samples"] == 6 and m["planned_samples"] == 10
    assert listed(folder) == on_disk(folder) and len(on_disk(folder)) == 12
    assert not (folder / "datalist.json").exists()  # a partial set is not offered to the loaders

    with caplog.at_level(logging.WARNING, logger="monai_gan_aug.handlers.writer"):
        writer, evaluator = generate(folder, generator)
    text = caplog.text
    assert "partial synthetic set: 6 of 10 samples" in text and "resuming" in text and str(folder) in text
    assert writer.mode == "resume" and evaluator.state.iteration == 2  # only the 4 missing samples were generated
    assert contents(folder) == contents(full)
    assert manifest(folder)["files"] == manifest(full)["files"] and manifest(folder)["complete"] is True
    assert (folder / "datalist.json").read_text() == (full / "datalist.json").read_text()


def test_kill_inside_a_batch_is_reconciled_on_restart(generator, full, tmp_path, monkeypatch):
    """A kill between renaming a batch's files and rewriting the manifest leaves complete but unlisted files: the
    manifest never lists a missing or truncated file, and the restart deletes the unlisted ones and resumes."""
    folder = tmp_path / "syn"
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        if ".writing" in str(src):
            calls.append(dst)
            if len(calls) == 7:  # batch 2 (samples 2, 3; 2 files each) is half renamed into place
                raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(writer_module.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator)
    monkeypatch.undo()
    assert manifest(folder)["num_samples"] == 2
    assert listed(folder) < on_disk(folder)  # every listed file exists; sample 2's files are not listed yet
    assert on_disk(folder) - listed(folder) == {"images/syn_000002.nii.gz", "images/syn_000002.png"}
    assert {p.name for p in (folder / ".writing").rglob("*.*")} == {"syn_000003.nii.gz", "syn_000003.png"}

    generate(folder, generator)
    assert contents(folder) == contents(full) and listed(folder) == on_disk(folder)
    assert not (folder / ".writing").exists()


def test_grouped_batches_keep_the_manifest_exact(generator, full, tmp_path):
    """With flush_fraction 0.5 the 4th batch waits in .writing/ (2 < 0.5 x 6 listed): the kill loses it, but the
    manifest still lists exactly the files in images/, and the restart writes the 4 missing samples."""
    folder = tmp_path / "syn"
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator, handlers=[Crash(after=4)], flush_fraction=0.5)
    assert manifest(folder)["num_samples"] == 6 and listed(folder) == on_disk(folder) and len(on_disk(folder)) == 12
    assert len([p for p in (folder / ".writing").rglob("*") if p.is_file()]) == 4
    _, evaluator = generate(folder, generator, flush_fraction=0.5)
    assert evaluator.state.iteration == 2 and contents(folder) == contents(full) and listed(folder) == on_disk(folder)
    with pytest.raises(ValueError, match="flush_fraction must be within"):
        SyntheticWriter(str(tmp_path / "other"), flush_fraction=2)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"seed": 8}, ["it was written with seed 7, this run uses 8", "--seed 7 resumes it"]),
        ({"n": 4}, ["it was started for 10 samples, this run asks for 4", "--num_samples 10 resumes it"]),
        ({"config": "cfg-2"}, ["config hash differs (cfg-1, now cfg-2)"]),
        ({"formats": ("png",)}, ["formats differ"]),
    ],
)
def test_partial_set_that_cannot_be_resumed_is_named_and_kept(generator, tmp_path, change, expected):
    folder = tmp_path / "syn"
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator, handlers=[Crash(after=3)])
    before = snapshot(folder)
    net, ckpt = generator
    with pytest.raises(FileExistsError) as err:
        if "config" in change or "formats" in change:
            SyntheticWriter(str(folder), formats=change.get("formats", ("nifti", "png")), checkpoint=ckpt,
                            config_hash=change.get("config", "cfg-1"))
        else:
            generate(folder, generator, n=change.get("n", 10), seed=change.get("seed", 7))
    msg = str(err.value)
    assert f"--synthetic_dir {folder} holds a partial synthetic set: 6 of 10 samples" in msg
    assert all(e in msg for e in expected), msg
    assert "--overwrite true" in msg and "--output_dir" not in msg
    assert snapshot(folder) == before


def test_other_checkpoint_is_not_resumed(generator, tmp_path):
    folder = tmp_path / "syn"
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator, handlers=[Crash(after=1)])
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 for k, v in generator[0].state_dict().items()}, other)
    with pytest.raises(FileExistsError, match="2 of 10 samples.*checkpoint differs"):
        SyntheticWriter(str(folder), checkpoint=str(other), config_hash="cfg-1")


def test_complete_set_is_refused_without_overwrite(full, generator):
    before = snapshot(full)
    with pytest.raises(FileExistsError) as err:
        SyntheticWriter(str(full), checkpoint=generator[1], config_hash="cfg-1")
    msg = str(err.value)
    assert f"--synthetic_dir {full} already holds files: a complete synthetic set of 10 samples" in msg
    assert "--overwrite true" in msg
    assert snapshot(full) == before


def test_overwrite_with_fewer_samples_leaves_no_stale_file(generator, tmp_path):
    folder = tmp_path / "syn"
    generate(folder, generator, n=10)
    generate(folder, generator, n=3, overwrite="true")
    m = manifest(folder)
    assert m["num_samples"] == 3 and m["complete"] is True
    assert listed(folder) == on_disk(folder) == {f"images/syn_{i:06d}.{e}" for i in range(3) for e in ("nii.gz", "png")}
    assert len(json.loads((folder / "datalist.json").read_text())["training"]) == 3


def test_overwrite_of_a_partial_set_with_orphans(generator, tmp_path):
    folder = tmp_path / "syn"
    with pytest.raises(KeyboardInterrupt):
        generate(folder, generator, handlers=[Crash(after=2)])
    (folder / "images" / "syn_000099.png").write_bytes(b"half-written")  # unlisted file of this writer
    generate(folder, generator, n=2, overwrite=True)
    assert listed(folder) == on_disk(folder) and len(on_disk(folder)) == 4


def test_overwrite_never_deletes_foreign_files(generator, tmp_path):
    folder = tmp_path / "syn"
    generate(folder, generator, n=2)
    (folder / "notes.txt").write_text("mine")
    (folder / "images" / "scan.png").write_bytes(b"mine too")
    before = snapshot(folder)
    with pytest.raises(FileExistsError) as err:
        generate(folder, generator, n=1, overwrite=True)
    msg = str(err.value)
    assert "2 file(s) this writer did not write (images/scan.png, notes.txt)" in msg and "nothing was deleted" in msg
    assert "--synthetic_dir" in msg
    assert snapshot(folder) == before
    with pytest.raises(FileExistsError, match=r"already holds files \(images/scan.png, notes.txt\)"):
        generate(folder, generator, n=1)


def test_manifest_listing_paths_outside_the_set_deletes_nothing_there(generator, tmp_path):
    """A (tampered) manifest naming a file outside images/ and labels/ does not make it ours."""
    folder = tmp_path / "syn"
    generate(folder, generator, n=2)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    m = manifest(folder)
    m["files"][0]["png"] = "../victim.txt"
    (folder / "manifest.json").write_text(json.dumps(m))
    generate(folder, generator, n=1, overwrite=True)
    assert victim.read_text() == "keep" and listed(folder) == on_disk(folder)


def test_files_without_manifest_are_refused_then_replaced(generator, tmp_path):
    folder = tmp_path / "syn"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "syn_000000.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="1 synthetic file.*but no manifest.json.*--overwrite true"):
        SyntheticWriter(str(folder))
    generate(folder, generator, n=1, overwrite=True)
    assert listed(folder) == on_disk(folder) == {"images/syn_000000.nii.gz", "images/syn_000000.png"}


def test_disk_space_is_checked_before_anything_is_written(generator, tmp_path):
    folder = tmp_path / "syn"
    with pytest.raises(DiskSpaceError) as err:
        generate(folder, generator, n=10**12, batch_size=2, free_space=lambda path: 500 * 2**30)
    msg = str(err.value)
    # 10**12 samples x (NIfTI 4 KiB + PNG 4 KiB + 2 KiB of manifest) x 1.1
    assert "10000000000000" not in msg and "need about 10.0 PiB" in msg and "only 500.0 GiB is free" in msg
    assert "--num_samples" in msg and f"--synthetic_dir {folder}" in msg
    assert not folder.exists()

    small = tmp_path / "small"
    with pytest.raises(DiskSpaceError, match=r"need about 64\.\d MiB .* only 10\.0 MiB is free"):
        generate(small, generator, n=4, free_space=lambda path: 10 * 2**20)
    assert not small.exists()
    generate(small, generator, n=4, free_space=lambda path: 100 * 2**20)
    assert len(on_disk(small)) == 8


def test_disk_space_counts_the_set_it_replaces(generator, tmp_path):
    folder = tmp_path / "syn"
    generate(folder, generator, n=4)
    old = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())  # files, manifest and datalist
    freed = writer_module.human_bytes(old)
    with pytest.raises(DiskSpaceError, match=f"only {freed} is free \\(counting {freed} of the set it replaces\\)"):
        generate(folder, generator, n=4, overwrite=True, free_space=lambda path: 0)
    assert len(on_disk(folder)) == 8  # refused: the earlier set is still there


def test_write_synthetic_set_names_its_python_arguments(generator, tmp_path):
    net, ckpt = generator
    folder = tmp_path / "syn"
    obj = DCGANObjective(latent_size=LATENT, latent_spatial=2)
    write_synthetic_set(net, obj, folder, 3, seed=5, batch_size=2, checkpoint=ckpt)
    assert manifest(folder)["num_samples"] == 3 and listed(folder) == on_disk(folder)
    with pytest.raises(FileExistsError) as err:
        write_synthetic_set(net, obj, folder, 3, seed=5, batch_size=2, checkpoint=ckpt)
    msg = str(err.value)
    assert f"output_dir {folder} already holds files" in msg and "overwrite=True" in msg and "--" not in msg


def test_plain_engine_batches(tmp_path):
    """The writer also serves a plain ignite Engine over a list of batches (no dataset to count)."""
    folder = tmp_path / "syn"
    writer = SyntheticWriter(str(folder), formats=("nifti",))
    batch = {"image": torch.zeros(3, 1, 8, 8), "index": torch.arange(3), "seed": torch.arange(3),
             "label": torch.ones(3, 1, 8, 8, dtype=torch.uint8)}
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    engine.run([batch], max_epochs=1)
    m = manifest(folder)
    assert m["complete"] is True and m["planned_samples"] is None and m["num_samples"] == 3
    assert listed(folder) == on_disk(folder) and len(on_disk(folder)) == 6
