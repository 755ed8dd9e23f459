# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Issue 14, item 2: a detection instrument that can resolve a +0.05 effect. For each candidate YOLO recipe, train
the real-only arm (and optionally the real + classic arm) on the whole demo training split with several seeds and
report the seed-to-seed sd of sensitivity@IoU0.25 (target <= 0.05), with the other columns.

Only the real training and validation splits choose the recipe: the test split is scored to measure the spread,
and the same fixed recipe is then used by every arm of ``python -m monai_gan_aug.benefit``.

Usage (repository root, resumable; each run's records go to OUT/runs):
    .venv/bin/python experiments/detection_recipe.py --out runs/exp/detection_recipe --seeds 0 1 2 3 4 \\
        --recipes sgd40 adamw60
Writes OUT/detection_recipe.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

from monai_gan_aug.evaluation.benefit import DetectionTask, _digest  # noqa: E402
from monai_gan_aug.evaluation.protocols import load_splits  # noqa: E402
from monai_gan_aug.evaluation.tables import load_run_record, save_run_record  # noqa: E402
from monai_gan_aug.metrics.paired import PatientScores, arm_metric  # noqa: E402

#: Candidate recipes (ultralytics train arguments on top of DetectionTask's defaults). Explicit optimizer: with
#: optimizer=auto ultralytics ignores lr0 (AdamW at 0.002 for one class, under 10k iterations).
RECIPES = {
    "v8p2_sgd40": {"model": "yolov8n-p2.yaml", "epochs": 40},  # DetectionTask's defaults: SGD lr0 0.01, patience 15
    "v8p2_adamw60": {"model": "yolov8n-p2.yaml", "epochs": 60,
                     "train_kwargs": {"optimizer": "AdamW", "lr0": 0.002, "patience": 20, "warmup_epochs": 2,
                                      "cos_lr": True}},
    "sgd40": {"epochs": 40, "train_kwargs": {"optimizer": "SGD", "lr0": 0.01, "patience": 15, "warmup_epochs": 3}},
    "sgd80": {"epochs": 80, "train_kwargs": {"optimizer": "SGD", "lr0": 0.01, "patience": 30, "warmup_epochs": 3,
                                             "cos_lr": True}},
    "adamw60": {"epochs": 60, "train_kwargs": {"optimizer": "AdamW", "lr0": 0.001, "patience": 20, "warmup_epochs": 2,
                                               "cos_lr": True}},
    "adamw100": {"epochs": 100, "train_kwargs": {"optimizer": "AdamW", "lr0": 0.001, "patience": 100,
                                                 "warmup_epochs": 2, "cos_lr": True}},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/exp/detection_recipe")
    p.add_argument("--dataset_dir", default=None)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--classic", action="store_true", help="also the real + classic augmentation arm")
    args = p.parse_args()
    out = Path(args.out)
    splits = load_splits(args.dataset_dir)
    results = {}
    for name in args.recipes:
        recipe = RECIPES[name]
        for classic in ([False, True] if args.classic else [False]):
            arm = f"{name}{'+classic' if classic else ''}"
            task = DetectionTask(imgsz=args.imgsz, **recipe)
            task.prepare(splits)
            runs, seconds = {}, []
            for seed in args.seeds:
                cfg = {"recipe": task.settings, "classic": classic, "seed": seed, "dataset": str(args.dataset_dir),
                       "n_train": len(splits["training"]), "n_test": len(splits["test"])}
                path = out / "runs" / f"{arm}_s{seed}_{_digest(cfg)}.json"
                rec = load_run_record(path, cfg)
                if rec is None:
                    t0 = time.perf_counter()
                    records = task.run(splits["training"], [], classic, seed)
                    rec = {"records": records, "seconds": time.perf_counter() - t0}
                    save_run_record(path, cfg, rec)
                runs[seed] = rec["records"]
                seconds.append(rec["seconds"])
                one = {seed: rec["records"]}
                print(f"{arm} seed {seed}: sens@0.25 {PatientScores.from_records(one, 'tp@0.25', 'n_gt').value():.3f}, "
                      f"at the val. operating point {PatientScores.from_records(one, 'tp_op@0.25', 'n_gt').value():.3f}"
                      f" ({rec['seconds']:.0f} s)", flush=True)
            entry = {m.key: arm_metric(PatientScores.from_records(runs, m.num, m.den)) for m in task.metrics}
            entry["cpm@0.25"] = [task.cpm(r, 0.25) for r in runs.values()]
            entry["seconds_per_run"] = float(np.mean(seconds))
            entry["settings"] = task.settings
            results[arm] = entry
            _write(out, results, args)


def _write(out: Path, results: dict, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "detection_recipe.json").write_text(json.dumps({"seeds": args.seeds, "imgsz": args.imgsz, "results": results},
                                                          indent=1, default=str))
    lines = ["| Recipe | Model | Sens@0.25, val. operating point | FPs/slice there | Sens@0.25, conf 0.001 | "
             "FPs/slice, conf 0.001 | Sens@0.5, conf 0.001 | CPM@0.25 | s/run |", "|---|---|---|---|---|---|---|---|---|"]
    for arm, e in results.items():
        s, f, s5 = e["sensitivity@0.25"], e["fp_per_slice@0.25"], e["sensitivity@0.5"]
        so, fo = e["sens_op@0.25"], e["fp_op@0.25"]
        cpm = np.asarray(e["cpm@0.25"], float)
        cpm_sd = float(np.nanstd(cpm, ddof=1)) if cpm.size > 1 else 0.0
        lines.append(f"| {arm} | {e['settings']['model']} | {so['mean']:.3f} ± {so['std']:.3f} | {fo['mean']:.2f} ± "
                     f"{fo['std']:.2f} | {s['mean']:.3f} ± {s['std']:.3f} | {f['mean']:.2f} ± "
                     f"{f['std']:.2f} | {s5['mean']:.3f} ± {s5['std']:.3f} | {np.nanmean(cpm):.3f} ± {cpm_sd:.3f} | "
                     f"{e['seconds_per_run']:.0f} |")
    text = (f"# Detection recipe: seed-to-seed spread of the real-only arm\n\nimgsz {args.imgsz}, seeds {args.seeds}, "
            "demo dataset (real training split only), model yaml from scratch, CPU (2 cores); sensitivity and FPs at "
            "conf 0.001 (Han et al.'s 0.1 %); CPM: MONAI compute_froc_score at 0.25-8 FPs/slice.\n\n" + "\n".join(lines) + "\n")
    (out / "detection_recipe.md").write_text(text)
    print(text, flush=True)


if __name__ == "__main__":
    main()
