# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Figures of the bundle docs, from trained runs of the experiment scripts (CPU, seconds).

``python experiments/figures.py pix2pix RUN_DIR OUT.png [--image_size 64] [--n 6]``: for ``n`` validation slices,
rows = tissue map given to the generator | generated slice | real slice, through the bundle's own ``evaluate.json``
(its preprocessing, network and objective), so the figure shows exactly what the honours-mask check scores.

``python experiments/figures.py real-dice RUN_DIR OUT.json``: the honours-mask numbers of the *real* validation
slices under the same reference segmenter (``RUN_DIR/eval/segmenter.pt``), the ceiling of the synthetic figures.

``python experiments/figures.py inpaint-pairs SYNTHETIC_DIR OUT.png [--n 8]``: for the first ``n`` items of a set that
added lesions to real slices (``source_image``, ``new_boxes``: lesion_inpaint's inference), top row the real slice
with the box to fill (red), bottom row the same slice with the generated lesion, both at the set's size and scale.

``python experiments/figures.py side-by-side OUT.png A.png B.png ...``: sample grids next to each other (a white gap
between), e.g. the same iteration of several variants.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from PIL import Image

from monai_gan_aug.engines.bundles import bundle_config_files
from monai_gan_aug.transforms.condition_encoding import mask_to_display
from monai_gan_aug.utils.image import make_grid_rgb, to_uint8_display

REPO = Path(__file__).resolve().parents[1]


def _evaluate_parser(run_dir: str, image_size: int) -> ConfigParser:
    """bundles/pix2pix/configs/evaluate.json (composed with common.json) for a trained run, on the CPU."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in bundle_config_files(REPO / "bundles/pix2pix", "evaluate.json")])
    parser.update({"output_dir": run_dir, "image_size": image_size, "device": "$torch.device('cpu')"})
    return parser


def pix2pix_figure(run_dir: str, out: str, image_size: int = 64, n: int = 6, scale: int = 2) -> Path:
    parser = _evaluate_parser(run_dir, image_size)
    network, objective = parser.get_parsed_content("network"), parser.get_parsed_content("objective")
    dataset = parser.get_parsed_content("dataset")
    num_classes = int(parser.get_parsed_content("num_classes"))
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    batch = {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0] if k in ("image", "tissue")}
    network.eval()
    with torch.no_grad():
        prepared = objective.prepare_batch(batch, torch.device("cpu"))
        fake = objective.generate({"generator": network}, len(items), batch=prepared, device="cpu")["image"]
    rows = [
        [to_uint8_display(mask_to_display(torch.as_tensor(it["tissue"]).long(), num_classes)) for it in items],
        [to_uint8_display(f) for f in fake],
        [to_uint8_display(torch.as_tensor(it["image"])) for it in items],
    ]
    grid = make_grid_rgb([t for row in rows for t in row], nrow=len(items))
    img = Image.fromarray(grid)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return Path(out)


def real_slices_dice(run_dir: str, out: str, image_size: int = 64) -> dict:
    import json

    from monai_gan_aug.engines import load_segmenter
    from monai_gan_aug.metrics import honours_mask

    parser = _evaluate_parser(run_dir, image_size)
    dataset = parser.get_parsed_content("dataset")
    seg = load_segmenter(parser.get_parsed_content("segmenter_def"), str(Path(run_dir) / "eval" / "segmenter.pt")).eval()
    images = torch.stack([torch.as_tensor(dataset[i]["image"]) for i in range(len(dataset))])
    maps = torch.stack([torch.as_tensor(dataset[i]["tissue"]) for i in range(len(dataset))]).long()
    with torch.no_grad():
        pred = seg(images).argmax(1, keepdim=True)
    result = honours_mask(pred, maps, int(parser.get_parsed_content("num_classes")))
    Path(out).write_text(json.dumps(result, indent=1, default=float))
    return result


def inpaint_pairs(synthetic_dir: str, out: str, n: int = 8) -> Path:
    """Source slices with the boxes to fill over the same slices with the generated lesions (module docstring)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from monai_gan_aug.evaluation.realism import _load_images, _spatial_shape

    root = Path(synthetic_dir)
    items = [i for i in json.loads((root / "datalist.json").read_text())["training"] if i.get("new_boxes")][:n]
    if not items:
        raise SystemExit(f"inpaint-pairs: {root}/datalist.json has no item with new_boxes and source_image.")
    size = _spatial_shape(str(root / items[0]["image"]))
    edited = _load_images([str(root / i["image"]) for i in items], size)
    sources = _load_images([str(i["source_image"]) for i in items], size)
    fig, axes = plt.subplots(2, len(items), figsize=(1.6 * len(items), 3.4), squeeze=False)
    for c, item in enumerate(items):
        for r, images in enumerate((sources, edited)):
            ax = axes[r][c]
            ax.axis("off")
            ax.imshow(images[c, 0].numpy().T, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            if r == 0:  # the box to fill; the edited slice is shown bare so the lesion can be judged
                for x0, y0, x1, y1 in item["new_boxes"]:
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="red", lw=0.6))
    axes[0][0].set_title("real slice, box", fontsize=8, loc="left")
    axes[1][0].set_title("generated lesion", fontsize=8, loc="left")
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def side_by_side(out: str, images: list[str], gap: int = 8) -> Path:
    """PNG files placed left to right on white, top-aligned."""
    if not images:
        raise SystemExit("side-by-side: give at least one image.")
    tiles = [Image.open(p).convert("RGB") for p in images]
    width = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    canvas = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width + gap
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["side-by-side"]:
        print(side_by_side(argv[1], argv[2:]))
        return 0
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["pix2pix", "real-dice", "inpaint-pairs"])
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--n", type=int, default=6)
    a = p.parse_args(argv)
    if a.kind == "inpaint-pairs":  # run_dir: the synthetic set's folder
        print(inpaint_pairs(a.run_dir, a.out, a.n if a.n != 6 else 8))
    elif a.kind == "pix2pix":
        print(pix2pix_figure(a.run_dir, a.out, a.image_size, a.n))
    else:
        print(real_slices_dice(a.run_dir, a.out, a.image_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
