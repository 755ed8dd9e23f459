# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Objective of the bounding-box-conditioned progressive GAN (CPGGAN) of Han et al., "Learning more with less"
(2019, arXiv:1902.09856): Karras et al.'s progressive growing (ICLR 2018) with the WGAN-GP loss of Gulrajani et al.
(2017) plus Karras' drift term, both networks conditioned on a rasterised box map.

The growth schedule is a pure function of the number of iterations done (:class:`ProgressiveSchedule`), evaluated
in :meth:`PGGANBoxObjective.on_iteration_started` from ``engine.state.iteration``: a resumed run, even one stopped
in the middle of a fade-in, continues at exactly the same resolution and ``alpha``.

Optional DiffAugment (Zhao et al., NeurIPS 2020) of everything the critic sees (``diffaugment``, off by default): see
:class:`PGGANBoxObjective`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from monai_gan_aug.losses.adversarial import gradient_penalty
from monai_gan_aug.losses.objectives.base import (
    GanObjective,
    Phase,
    PhaseContext,
    _latents_from_seeds,
)
from monai_gan_aug.networks.blocks.diffaugment import diff_augment, parse_policy
from monai_gan_aug.networks.blocks.progressive import area_downsample, nearest_upsample
from monai_gan_aug.networks.nets.pggan import pggan_resolutions
from monai_gan_aug.transforms.boxes.array import as_box_array, boxes_to_condition_map
from monai_gan_aug.transforms.conditions import BoxSampler
from monai_gan_aug.utils.enums import GanKeys

__all__ = ["PGGANBoxObjective", "ProgressiveSchedule", "ScheduleState", "boxes_as_list"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleState:
    """Where the progressive schedule is at one iteration.

    Attributes:
        stage: network stage (0 = 4 px).
        resolution: ``4 * 2 ** stage``.
        alpha: fade-in weight of the newest block (1 in stable phases).
        phase: ``"stable"`` or ``"fade"``.
        phase_index: index of the phase in :attr:`ProgressiveSchedule.phases`.
        batch_size: images used per iteration at this resolution.
        images_shown: real images shown before this iteration.
    """

    stage: int
    resolution: int
    alpha: float
    phase: str
    phase_index: int
    batch_size: int
    images_shown: int


class ProgressiveSchedule:
    """Karras et al.'s growth schedule: a stable phase at ``start_resolution``, then for each larger resolution a
    fade-in phase (``alpha`` rising linearly from 0 to 1) and a stable phase, each lasting ``images_per_phase`` real
    images (``fade_images`` for fade-ins when given); the last stable phase never ends.

    An iteration at resolution ``r`` shows ``batch_sizes[r]`` images, so a phase lasts
    ``ceil(images / batch_sizes[r])`` iterations. Everything is a function of the number of iterations done.

    Args:
        max_resolution: final resolution (power of two).
        images_per_phase: real images per phase (Karras et al. used 600k-800k), or a mapping resolution -> images
            (keys may be strings, as in JSON; every scheduled resolution must be given) to spend more of a small
            compute budget where lesions are visible.
        batch_sizes: resolution -> batch size (keys may be strings); missing resolutions use ``batch_size``.
        batch_size: default batch size.
        start_resolution: first resolution (4 in the paper).
        fade_images: images per fade-in phase, a number or a mapping like ``images_per_phase`` (default
            ``images_per_phase``).
    """

    def __init__(
        self,
        max_resolution: int,
        images_per_phase: int | Mapping,
        batch_sizes: Mapping | None = None,
        batch_size: int = 16,
        start_resolution: int = 4,
        fade_images: int | Mapping | None = None,
    ) -> None:
        all_res = pggan_resolutions(int(max_resolution))
        if start_resolution not in all_res:
            raise ValueError(f"start_resolution must be one of {all_res}, got {start_resolution!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        sizes = {int(k): int(v) for k, v in dict(batch_sizes or {}).items()}
        bad = {k: v for k, v in sizes.items() if v < 1 or k not in all_res}
        if bad:
            raise ValueError(f"batch_sizes must map resolutions in {all_res} to sizes >= 1, got {bad}.")
        self.all_resolutions = all_res
        self.resolutions = [r for r in all_res if r >= start_resolution]
        self.images_per_phase = self._per_resolution("images_per_phase", images_per_phase)
        self.fade_images = (
            self._per_resolution("fade_images", fade_images) if fade_images is not None else dict(self.images_per_phase)
        )
        self.batch_sizes = {r: sizes.get(r, int(batch_size)) for r in all_res}
        self.max_batch_size = max(self.batch_sizes[r] for r in self.resolutions)
        # (resolution, kind, iterations, images per phase); the last phase is open-ended
        self.phases: list[tuple[int, str, int, int]] = []
        for i, r in enumerate(self.resolutions):
            b = self.batch_sizes[r]
            if i > 0:
                self.phases.append((r, "fade", math.ceil(self.fade_images[r] / b), self.fade_images[r]))
            self.phases.append((r, "stable", math.ceil(self.images_per_phase[r] / b), self.images_per_phase[r]))

    def _per_resolution(self, name: str, value: int | Mapping) -> dict[int, int]:
        if isinstance(value, Mapping):
            given = {int(k): int(v) for k, v in value.items()}
            missing = [r for r in self.resolutions if r not in given]
            if missing:
                raise ValueError(f"{name} gives resolutions {sorted(given)} but not {missing}; give every one of {self.resolutions}.")
        else:
            given = {r: int(value) for r in self.resolutions}
        bad = {r: v for r, v in given.items() if v < 1}
        if bad:
            raise ValueError(f"{name} must be >= 1 images, got {bad}.")
        return {r: given[r] for r in self.resolutions}

    def at(self, iterations_done: int) -> ScheduleState:
        """State for the iteration that follows ``iterations_done`` completed iterations."""
        if iterations_done < 0:
            raise ValueError(f"iterations_done must be >= 0, got {iterations_done}.")
        left, shown = int(iterations_done), 0
        for k, (r, kind, n_it, images) in enumerate(self.phases):
            b = self.batch_sizes[r]
            last = k == len(self.phases) - 1
            if left < n_it or last:
                stage = self.all_resolutions.index(r)
                alpha = min(1.0, left * b / images) if kind == "fade" else 1.0
                return ScheduleState(stage, r, float(alpha), kind, k, b, shown + left * b)
            left -= n_it
            shown += n_it * b
        raise AssertionError("unreachable")  # pragma: no cover

    def iterations_until(self, resolution: int, kind: str = "stable") -> int:
        """Iterations done before the phase ``(resolution, kind)`` starts."""
        total = 0
        for r, k, n_it, _ in self.phases:
            if r == resolution and k == kind:
                return total
            total += n_it
        raise ValueError(f"the schedule has no {kind!r} phase at resolution {resolution} (phases: {self.phases}).")

    @property
    def total_growth_iterations(self) -> int:
        """Iterations until the final resolution's stable phase starts (plus its nominal length)."""
        return sum(n for _, _, n, _ in self.phases)


def boxes_as_list(boxes: Any, n: int, spatial_dims: int) -> list[torch.Tensor]:
    """Per-sample ``(N_i, 2 * D)`` float32 CPU tensors from what a DataLoader gives: a list of tensors / arrays /
    nested lists (:func:`~monai_gan_aug.data.gan_collate`), or one ``(n, M, 2 * D)`` tensor
    (MONAI's default collate when every image has ``M`` boxes)."""
    if boxes is None:
        return [torch.zeros((0, 2 * spatial_dims)) for _ in range(n)]
    if isinstance(boxes, (torch.Tensor, np.ndarray)) and np.ndim(boxes) == 3 or isinstance(boxes, Sequence) and not isinstance(boxes, str):
        items = list(boxes)
    else:
        raise TypeError(
            f"boxes must be a per-image list (use collate_fn=monai_gan_aug.data.gan_collate), "
            f"got {type(boxes).__name__} of shape {getattr(boxes, 'shape', None)}."
        )
    if len(items) != n:
        raise ValueError(f"got box lists for {len(items)} images but {n} images in the batch.")
    return [torch.as_tensor(as_box_array(b, spatial_dims=spatial_dims), dtype=torch.float32) for b in items]


def _labels_as_list(labels: Any, boxes: list[torch.Tensor]) -> list[torch.Tensor]:
    if labels is None:
        return [torch.zeros(len(b), dtype=torch.int64) for b in boxes]
    items = list(labels)
    if len(items) != len(boxes):
        raise ValueError(f"got box labels for {len(items)} images but boxes for {len(boxes)}.")
    out = []
    for lab, b in zip(items, boxes):
        t = torch.as_tensor(np.asarray(lab.detach().cpu() if isinstance(lab, torch.Tensor) else lab, dtype=np.int64))
        t = t.reshape(-1)
        if len(t) != len(b):
            raise ValueError(f"an image has {len(b)} boxes but {len(t)} box labels.")
        out.append(t)
    return out


class PGGANBoxObjective(GanObjective):
    """Bounding-box-conditioned PGGAN (Han et al. 2019) with WGAN-GP + drift (Karras et al. 2018).

    Networks ``generator`` (:class:`~monai_gan_aug.networks.nets.pggan.PGGANGenerator`) and ``discriminator``
    (:class:`~monai_gan_aug.networks.nets.pggan.PGGANDiscriminator`), optimizers of the same names (Karras: Adam,
    lr 1e-3, betas (0, 0.99)). Phases: ``d`` (``n_critic`` times, fresh fakes each time), then ``g``.

    Critic loss ``E[D(G(z, c), c)] - E[D(x, c)] + lambda * GP + drift * E[D(x, c)^2]``, generator loss
    ``-E[D(G(z, c), c)]``, with ``c`` the box map of the real batch (so fakes are asked for the training set's box
    layouts). Reals are area-downsampled to the current resolution and, during a fade-in, blended between their
    2x coarser (nearest-upsampled) version and themselves with the networks' ``alpha`` (Karras et al.).

    Batches: ``image`` (N, C, *[max_resolution]) in [-1, 1] and ``boxes`` (a list of (N_i, 2 * D) boxes per image;
    use :func:`~monai_gan_aug.data.gan_collate`). The loader yields the largest batch; each
    iteration uses the first ``batch_sizes[resolution]`` images.

    Args:
        latent_size: generator latent length.
        max_resolution: final image side (the preprocessed training size).
        spatial_dims: 2 or 3.
        images_per_phase: real images per fade-in and per stable phase (a number, or resolution -> images).
        batch_size: the loader's batch size (default per-resolution batch).
        batch_sizes: resolution -> batch size.
        start_resolution: first resolution.
        fade_images: images per fade-in (default ``images_per_phase``).
        n_critic: critic steps per generator step (1 in Karras et al.).
        lambda_gp: gradient-penalty weight (10).
        drift: drift weight (0.001).
        mismatch_weight: weight of an optional matching-aware ranking term for the critic (not in Han et al.; after
            Reed et al., "Generative adversarial text to image synthesis", ICML 2016): each real image with the box
            map of another image of the batch must score at least ``mismatch_margin`` below the same image with its
            own map, ``mean(relu(margin - D(x, c) + D(x, c')))``. It teaches the critic early that a lesion outside
            the boxes, or a box without a lesion, is wrong. 0 (default) is the paper's loss.
        mismatch_margin: the margin of that term.
        box_sampler: draws box sets for :meth:`generate` when a batch brings none.
        diffaugment: DiffAugment policy of the critic's inputs (Zhao et al. 2020), e.g. ``"color,translation,cutout"``
            (a comma-separated subset of ``color``, ``brightness``, ``saturation``, ``contrast``, ``translation``,
            ``cutout``, as FastGAN's ``policy``); ``""`` / None (default) is the paper's training. When on, every
            critic call sees augmented inputs, real and fake alike, in the critic and the generator step (the
            generator's gradient flows through the differentiable augmentation). The box map is brought to the
            current resolution (area pooling, as the critic's own condition pyramid does) and augmented with the
            *same* random draw as its image: translation and cut-out move / cut the map with the pixels, colour
            operations touch the image channels only. Reals and fakes get independent draws (from torch's global
            generator, so a seeded run is reproducible and a resumed one continues the same stream). The
            gradient penalty is taken on the critic's input: one further draw, shared by each real / fake pair and
            their map, augments both, and the penalty is the gradient norm at their interpolates (the augmentation
            is affine for fixed parameters, so these are the augmented interpolates of the un-augmented pair). The
            generator's condition input is never augmented, so generation is unchanged.
    """

    generator_name = "generator"

    def __init__(
        self,
        latent_size: int = 512,
        max_resolution: int = 256,
        spatial_dims: int = 2,
        images_per_phase: int | Mapping = 600_000,
        batch_size: int = 16,
        batch_sizes: Mapping | None = None,
        start_resolution: int = 4,
        fade_images: int | Mapping | None = None,
        n_critic: int = 1,
        lambda_gp: float = 10.0,
        drift: float = 0.001,
        mismatch_weight: float = 0.0,
        mismatch_margin: float = 1.0,
        box_sampler: BoxSampler | None = None,
        diffaugment: str | Sequence[str] | None = "",
    ) -> None:
        if latent_size < 1:
            raise ValueError(f"latent_size must be >= 1, got {latent_size}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}.")
        if lambda_gp < 0 or drift < 0:
            raise ValueError(f"lambda_gp and drift must be >= 0, got {lambda_gp}, {drift}.")
        if mismatch_weight < 0 or mismatch_margin < 0:
            raise ValueError(f"mismatch_weight and mismatch_margin must be >= 0, got {mismatch_weight}, {mismatch_margin}.")
        if box_sampler is not None and not isinstance(box_sampler, BoxSampler):
            raise TypeError(f"box_sampler must be a BoxSampler, got {type(box_sampler).__name__}.")
        self.latent_size, self.spatial_dims = int(latent_size), int(spatial_dims)
        self.schedule = ProgressiveSchedule(
            max_resolution, images_per_phase, batch_sizes, batch_size, start_resolution, fade_images
        )
        self.max_resolution = self.schedule.all_resolutions[-1]
        self.n_critic, self.lambda_gp, self.drift = int(n_critic), float(lambda_gp), float(drift)
        self.mismatch_weight, self.mismatch_margin = float(mismatch_weight), float(mismatch_margin)
        self.box_sampler = box_sampler
        self.diffaugment = parse_policy(diffaugment)
        self.iterations_done: int | None = None  # None: not driven by a trainer (generation uses the final stage)
        self.current: ScheduleState = self._final_state()
        self._phases = [
            Phase("d", ["discriminator"], self.d_loss, repeats=self.n_critic),
            Phase("g", ["generator"], self.g_loss),
        ]

    def _final_state(self) -> ScheduleState:
        r = self.max_resolution
        return ScheduleState(len(self.schedule.all_resolutions) - 1, r, 1.0, "stable", len(self.schedule.phases) - 1,
                             self.schedule.batch_sizes[r], 0)

    def phases(self) -> list[Phase]:
        return self._phases

    # ------------------------------------------------------------------ schedule and state
    def on_iteration_started(self, engine: Any) -> None:
        done = int(engine.state.iteration) - 1
        previous = self.current if self.iterations_done is not None else None
        self.iterations_done = done
        self.current = self.schedule.at(done)
        if previous is None or previous.phase_index != self.current.phase_index:
            logger.info(
                "PGGAN: %s phase at %d px (iteration %d, %d images shown, batch %d).", self.current.phase,
                self.current.resolution, done + 1, self.current.images_shown, self.current.batch_size,
            )

    def state_dict(self) -> dict:
        return {"iterations_done": self.iterations_done, **asdict(self.current)}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the schedule position. During training :meth:`on_iteration_started` recomputes it from the
        iteration anyway; for generation the stored stage and alpha (what the networks were trained at) are used, so
        an objective built with other schedule settings (e.g. in ``inference.json``) still generates correctly."""
        done = state.get("iterations_done")
        if done is None:
            self.iterations_done, self.current = None, self._final_state()
            return
        self.iterations_done = int(done)
        expected = self.schedule.at(self.iterations_done)
        if "stage" not in state:
            self.current = expected
            return
        stage = int(state["stage"])
        if not 0 <= stage < len(self.schedule.all_resolutions):
            raise ValueError(
                f"the checkpoint's PGGAN stage {stage} does not exist for max_resolution {self.max_resolution}; use the "
                "image_size of training."
            )
        r = self.schedule.all_resolutions[stage]
        alpha = float(state.get("alpha", 1.0))
        if (stage, alpha) != (expected.stage, expected.alpha):
            logger.debug("PGGAN: stored stage %d alpha %.4f differ from this schedule's (%d, %.4f); using the stored.",
                         stage, alpha, expected.stage, expected.alpha)
        self.current = ScheduleState(stage, r, alpha, str(state.get("phase", "stable")), int(state.get("phase_index", 0)),
                                     self.schedule.batch_sizes[r], int(state.get("images_shown", 0)))

    def load_checkpoint_state(self, checkpoint: str | None) -> PGGANBoxObjective:
        """Restore the stage / alpha a training checkpoint was at (its ``objective`` entry), for generation from a
        generator that has not finished growing. Returns ``self``."""
        from monai_gan_aug.utils.checkpoint_io import load_checkpoint

        if not checkpoint:
            raise FileNotFoundError("no checkpoint given: train first (configs/train.json) or pass --checkpoint PATH.")
        state = load_checkpoint(checkpoint)  # weights_only: a file holding anything but tensors/plain values is refused
        if not isinstance(state, Mapping) or "objective" not in state:
            raise ValueError(f"checkpoint {checkpoint} holds no 'objective' state (not a GanCheckpointHandler file?).")
        self.load_state_dict(state["objective"])
        return self

    # ------------------------------------------------------------------ data
    def condition_maps(self, boxes: Sequence[torch.Tensor], spatial_size: Sequence[int]) -> torch.Tensor:
        """``(N, 1, *spatial_size)`` box maps (1 inside any box)."""
        if not len(boxes):
            return torch.zeros((0, 1, *spatial_size))
        return torch.stack([boxes_to_condition_map(b, spatial_size) for b in boxes])

    def prepare_batch(self, batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        out = super().prepare_batch(batch, device)
        image = out.get(GanKeys.IMAGE)
        full = (self.max_resolution,) * self.spatial_dims
        if image is not None:
            if tuple(image.shape[2:]) != full:
                raise ValueError(
                    f"PGGANBoxObjective: training images must be {full} (max_resolution), got {tuple(image.shape[2:])}; "
                    "set the preprocessing's size and max_resolution to the same value."
                )
            n = image.shape[0]
        elif GanKeys.BOXES in batch:
            n = len(batch[GanKeys.BOXES])
        else:
            return out
        if GanKeys.BOXES not in batch and isinstance(batch.get(GanKeys.COND), torch.Tensor):
            return out
        if image is not None and GanKeys.BOXES not in batch:
            raise ValueError(
                "PGGANBoxObjective needs 'boxes' in every training batch (an empty list for images without lesions): "
                "add 'boxes' to the datalist items and use collate_fn=monai_gan_aug.data.gan_collate."
            )
        boxes = boxes_as_list(batch.get(GanKeys.BOXES), n, self.spatial_dims)
        out[GanKeys.BOXES] = boxes
        out[GanKeys.BOX_LABELS] = _labels_as_list(batch.get(GanKeys.BOX_LABELS), boxes)
        out[GanKeys.COND] = self.condition_maps(boxes, full).to(device)
        return out

    def _real_at_resolution(self, image: torch.Tensor, state: ScheduleState) -> torch.Tensor:
        x = area_downsample(image, image.shape[-1] // state.resolution)
        if state.phase == "fade" and state.alpha < 1.0:
            low = nearest_upsample(area_downsample(x, 2), 2)
            x = torch.lerp(low, x, state.alpha)
        return x

    def sample_latents(self, num: int, device: torch.device | str) -> torch.Tensor:
        return torch.randn((num, self.latent_size), device=device)

    def critic_inputs(self, images: Sequence[torch.Tensor], *conds: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """What the critic sees: ``images`` (each ``(N, C, *[r])`` at the current resolution ``r``) and condition maps
        (``(N, K, *spatial)``, ``spatial`` a power-of-two multiple of ``r``) augmented with ONE DiffAugment draw.

        Without ``diffaugment`` the tensors come back unchanged. With it the maps are area-pooled to ``r`` and
        concatenated behind the image channels, so translation and cut-out move / cut map and pixels identically,
        colour operations change only the ``C`` image channels, and the images share the draw too (used for the
        gradient penalty's real / fake pairs).

        Returns:
            ``(augmented images, augmented maps at resolution r)``.
        """
        images = list(images)
        if not self.diffaugment:
            return images, list(conds)
        ref = images[0]
        c = ref.shape[1]
        maps = []
        for m in conds:
            factor = m.shape[-1] // ref.shape[-1]
            pooled = area_downsample(m, factor).to(ref.dtype) if factor >= 1 else m
            if tuple(pooled.shape[2:]) != tuple(ref.shape[2:]) or m.shape[0] != ref.shape[0]:
                raise ValueError(
                    f"PGGANBoxObjective: condition map {tuple(m.shape)} does not pool to the images' {tuple(ref.shape)}."
                )
            maps.append(pooled)
        joint = [torch.cat([x, *maps], dim=1) for x in images]
        out = diff_augment(*joint, policy=self.diffaugment, color_channels=c)
        sizes = [c] + [m.shape[1] for m in maps]
        aug_maps = list(torch.split(out[0], sizes, dim=1)[1:])
        return [t[:, :c] for t in out], aug_maps

    # ------------------------------------------------------------------ losses
    def d_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        st = self.current
        images, cond = ctx.batch[GanKeys.IMAGE], ctx.batch[GanKeys.COND]
        n = min(st.batch_size, images.shape[0])
        reals = self._real_at_resolution(images[:n], st)
        cond = cond[:n]
        g, d = ctx.nets["generator"], ctx.nets["discriminator"]
        with torch.no_grad():
            fakes = g(self.sample_latents(n, ctx.device), cond, st.stage, st.alpha)
        mismatch_on = self.mismatch_weight > 0 and n > 1
        wrong = cond.roll(1, dims=0) if mismatch_on else None
        # one draw for the reals with their own and the rolled maps, an independent one for the fakes (identity
        # without diffaugment)
        (real_in,), (real_cond, *wrong_cond) = self.critic_inputs([reals], cond, *([wrong] if mismatch_on else []))
        (fake_in,), (fake_cond,) = self.critic_inputs([fakes], cond)
        real_scores = d(real_in, real_cond, st.stage, st.alpha).float()
        fake_scores = d(fake_in, fake_cond, st.stage, st.alpha).float()
        wasserstein = real_scores.mean() - fake_scores.mean()
        (gp_real, gp_fake), (gp_cond,) = self.critic_inputs([reals, fakes], cond)  # a shared draw per pair
        gp = gradient_penalty(lambda x: d(x, gp_cond, st.stage, st.alpha), gp_real, gp_fake)
        drift = real_scores.pow(2).mean()
        loss = -wasserstein + self.lambda_gp * gp + self.drift * drift
        terms = {"wasserstein": wasserstein.detach(), "gp": gp.detach(), "drift": drift.detach()}
        if mismatch_on:
            differs = (wrong != cond).flatten(1).any(dim=1).float()
            wrong_scores = d(real_in, wrong_cond[0], st.stage, st.alpha).float()
            hinge = torch.relu(self.mismatch_margin - real_scores + wrong_scores).reshape(-1) * differs
            mismatch = hinge.sum() / differs.sum().clamp(min=1.0)
            loss = loss + self.mismatch_weight * mismatch
            terms["mismatch"] = mismatch.detach()
        return loss, terms

    def g_loss(self, ctx: PhaseContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        st = self.current
        images, cond = ctx.batch[GanKeys.IMAGE], ctx.batch[GanKeys.COND]
        n = min(st.batch_size, images.shape[0])
        cond = cond[:n]
        fakes = ctx.nets["generator"](self.sample_latents(n, ctx.device), cond, st.stage, st.alpha)
        ctx.outputs[GanKeys.FAKES] = fakes.detach()
        (fake_in,), (fake_cond,) = self.critic_inputs([fakes], cond)  # differentiable: G's gradient flows through
        loss = -ctx.nets["discriminator"](fake_in, fake_cond, st.stage, st.alpha).float().mean()
        return loss, {
            "resolution": torch.tensor(float(st.resolution)),
            "alpha": torch.tensor(st.alpha),
        }

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        nets: Mapping[str, torch.nn.Module],
        num: int,
        batch: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        """Generate ``num`` images at full resolution (nearest-upsampled while the generator has not grown to it).

        Boxes come from ``batch["boxes"]`` (first ``num``), else from the box sampler drawn with each sample's seed,
        so image ``i`` and its boxes depend on ``seeds[i]`` only.

        Returns:
            ``{"image": (num, C, *spatial), "boxes": [(N_i, 2D)], "box_labels": [(N_i,)], "cond": (num, 1, *spatial),
            "latents": (num, latent_size), "class": (num,)}`` (``class`` 1 for images with at least one box, the
            image-level label of the demo datalist, so a synthetic set also serves lesion / no-lesion classification).
        """
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}.")
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (num,)).tolist()
        seeds = [int(s) for s in seeds]
        if len(seeds) < num:
            raise ValueError(f"got {len(seeds)} seeds for {num} samples.")
        seeds = seeds[:num]
        full = (self.max_resolution,) * self.spatial_dims
        if batch is not None and batch.get(GanKeys.BOXES) is not None:
            given = list(batch[GanKeys.BOXES])
            if len(given) < num:
                raise ValueError(f"the batch holds box sets for {len(given)} images, {num} requested.")
            boxes = boxes_as_list(given[:num], num, self.spatial_dims)
            labels = batch.get(GanKeys.BOX_LABELS)
            labels = _labels_as_list(list(labels)[:num] if labels is not None else None, boxes)
        elif self.box_sampler is not None:
            if tuple(self.box_sampler.image_size) != full:
                raise ValueError(f"the box sampler's image_size {self.box_sampler.image_size} differs from {full}.")
            drawn = [self.box_sampler.sample(s) for s in seeds]
            boxes = [torch.as_tensor(b, dtype=torch.float32) for b, _ in drawn]
            labels = [torch.as_tensor(lab, dtype=torch.int64) for _, lab in drawn]
        else:
            raise ValueError(
                "PGGANBoxObjective.generate needs box sets: pass a batch with 'boxes' (e.g. BoxConditionDataset) or "
                "give the objective a box_sampler."
            )
        cond = self.condition_maps(boxes, full).to(device)
        z = _latents_from_seeds(seeds, (self.latent_size,), device)
        st = self.current
        g = nets[self.generator_name]
        img = g(z, cond, st.stage, st.alpha)
        img = nearest_upsample(img, self.max_resolution // img.shape[-1])
        return {
            GanKeys.IMAGE: img,
            GanKeys.BOXES: boxes,
            GanKeys.BOX_LABELS: labels,
            GanKeys.COND: cond,
            GanKeys.LATENTS: z,
            # 1 when the image was asked for lesions: the demo datalist's image-level ``class`` (lesion vs none)
            GanKeys.CLASS: torch.as_tensor([int(len(b) > 0) for b in boxes], dtype=torch.int64, device=img.device),
        }
