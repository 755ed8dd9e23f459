# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Choose the optimizer steps of the same-steps benefit protocol on the validation split.

For one real-data size (a fraction of the demo's training patients, the nested subset of
``python -m monai_gan_aug.benefit``), train the real + classic detector for each candidate number of steps
(``DetectionTask`` with ``steps``: every arm of the benefit table then takes that many) and score it on the real
*validation* split only: sensitivity@IoU0.25 at 1 false positive per validation slice, and ultralytics' final
validation mAP50. The test split is never read. The rule, fixed before running: the smallest candidate whose mean
validation sensitivity is within 0.02 of the best candidate's.

Usage (repository root, resumable; one JSON record per run under OUT/runs):
    YOLO_OFFLINE=1 .venv/bin/python experiments/benefit_steps.py --out runs/exp/benefit_steps --fraction 0.1 \\
        --steps 200 400 800 --seeds 0 1
Writes OUT/benefit_steps.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

from monai_gan_aug.evaluation.benefit import (  # noqa: E402
    DetectionTask,
    _digest,
    content_digest,
    nested_patient_subsets,
    operating_point_counts,
    operating_threshold,
)
from monai_gan_aug.evaluation.detection import predict_detections  # noqa: E402
from monai_gan_aug.evaluation.protocols import load_splits  # noqa: E402
from monai_gan_aug.evaluation.tables import load_run_record, save_run_record  # noqa: E402

#: the rule that picks the steps: the smallest candidate within this much of the best validation sensitivity
TOLERANCE = 0.02


def validation_scores(task: DetectionTask, best: Path, val: list[dict]) -> dict[str, float]:
    """Sensitivity@IoU0.25 and FPs/slice of ``best`` on ``val`` at the threshold that allows ``operating_fp`` false
    positives per validation slice (the benefit table's operating point, here on the split it is fixed on)."""
    s = task.settings
    preds = predict_detections(str(best), val, conf=float(s["conf"]), imgsz=int(s["imgsz"]), device=s["device"])
    thr = operating_threshold(preds, val, float(s["operating_fp"]))
    tp = fp = n_gt = 0
    for item, p in zip(val, preds):
        gt = np.asarray(item.get("boxes", []), float).reshape(-1, 4)
        found, false = operating_point_counts(p, gt, thr)
        tp, fp, n_gt = tp + found, fp + false, n_gt + len(gt)
    return {"val_sens_op@0.25": tp / max(1, n_gt), "val_fp_op@0.25": fp / max(1, len(val)), "threshold": thr}


def final_map50(run_dir: Path) -> float | None:
    """ultralytics' last validation mAP50 (``results.csv``), or None."""
    path = run_dir / "results.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    key = next((k for k in rows[-1] if k.strip() == "metrics/mAP50(B)"), None) if rows else None
    return float(rows[-1][key]) if key else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/exp/benefit_steps")
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--steps", type=int, nargs="+", default=[200, 400, 800])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--subset_seed", type=int, default=0)
    p.add_argument("--task_settings", type=json.loads, default={})
    p.add_argument("--dataset_dir", default=None, help="real datalist (default: the demo dataset)")
    a = p.parse_args()
    out = Path(a.out).absolute()
    splits = load_splits(a.dataset_dir)
    subset = nested_patient_subsets(splits["training"], [a.fraction], a.subset_seed)[a.fraction]
    val = splits["validation"]
    results = []
    for steps in a.steps:
        task = DetectionTask(**{**a.task_settings, "steps": steps})
        task.prepare({**splits, "test": []})
        for seed in a.seeds:
            cfg = {"settings": task.settings, "seed": seed, "real": content_digest(subset), "val": content_digest(val)}
            path = out / "runs" / f"steps{steps}_s{seed}_{_digest(cfg)}.json"
            rec = load_run_record(path, cfg)
            if rec is None:
                t0 = time.perf_counter()
                with tempfile.TemporaryDirectory(prefix="benefit_steps_") as tmp:
                    best, _ = task.train_detector(subset, [], True, seed, tmp)
                    rec = {**validation_scores(task, best, val), "val_map50": final_map50(best.parent.parent),
                           "epochs": task.epochs_for(len(subset)), "seconds": time.perf_counter() - t0}
                save_run_record(path, cfg, rec)
            results.append({"steps": steps, "seed": seed, **{k: rec[k] for k in rec if k != "config"}})
            print(results[-1], flush=True)
    by = {s: [r for r in results if r["steps"] == s] for s in a.steps}
    summary = {s: {"val_sens_op@0.25": float(np.mean([r["val_sens_op@0.25"] for r in rs])),
                   "val_map50": float(np.mean([r["val_map50"] or 0.0 for r in rs])),
                   "minutes_per_run": float(np.mean([r["seconds"] for r in rs])) / 60} for s, rs in by.items()}
    top = max(v["val_sens_op@0.25"] for v in summary.values())
    chosen = min(s for s, v in summary.items() if v["val_sens_op@0.25"] >= top - TOLERANCE)
    report = {"fraction": a.fraction, "n_real": len(subset), "seeds": a.seeds, "tolerance": TOLERANCE,
              "summary": summary, "chosen_steps": chosen, "runs": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "benefit_steps.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Steps of the same-steps protocol, chosen on the validation split ({a.fraction:g} of the training "
             f"patients, {len(subset)} real slices, real + classic, seeds {a.seeds})", "",
             "| Steps | Val. sensitivity@0.25 at 1 FP/slice | Val. mAP50 (final) | Minutes per run |", "|---|---|---|---|"]
    lines += [f"| {s} | {v['val_sens_op@0.25']:.3f} | {v['val_map50']:.3f} | {v['minutes_per_run']:.1f} |"
              for s, v in summary.items()]
    lines += ["", f"Chosen (smallest within {TOLERANCE} of the best): **{chosen} steps**."]
    (out / "benefit_steps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
