#!/usr/bin/env bash
# Han et al. 2019 Table 1 on the embedded demo dataset: YOLOv3-tiny trained on real slices only vs real + synthetic
# slices of the demo job's pggan_bbox generator, scored on the real test split. CPU, about 40 minutes on 2 cores.
# Usage (repository root): bash experiments/pggan_bbox_detection.sh [OUT]   (default runs/exp)
set -euo pipefail
OUT=${1:-runs/exp}
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-20}
SEEDS=${SEEDS:-0,1,2}
export YOLO_OFFLINE=1
# 1. the demo job's generator: 825 iterations, 4 -> 64 px (resumes / returns at once if already trained)
test -f runs/demo/pggan_bbox/checkpoints/checkpoint_825.pt || $PY -m monai_gan_aug demo --output_dir runs/demo
# 2. 600 synthetic slices with their boxes (seeds 1000000..), box sets drawn from the training boxes with jitter
test -f "$OUT/pggan_syn/datalist.json" || $PY -m monai.bundle run --config_file "['bundles/pggan_bbox/configs/common.json','bundles/pggan_bbox/configs/inference.json']" \
    --image_size 64 --output_dir runs/demo/pggan_bbox --synthetic_dir "$OUT/pggan_syn" --num_samples 600
# 3. real only vs real + synthetic (1:1), yolov3-tinyu.yaml from scratch, 128 px, seeds 0-2
$PY -m monai_gan_aug.evaluation.detection --synthetic "$OUT/pggan_syn" --ratios 0,1 --seeds "$SEEDS" \
    --epochs "$EPOCHS" --imgsz 128 --model yolov3-tinyu.yaml --device cpu --out "$OUT/detection"
# 4. the paper's "discard synthetic images with unclear lesions": keep box contrast >= 0.5 (about the 30th percentile)
$PY -m monai_gan_aug.evaluation.detection --synthetic "$OUT/pggan_syn" --ratios 1 --seeds "$SEEDS" \
    --epochs "$EPOCHS" --imgsz 128 --model yolov3-tinyu.yaml --device cpu --min_box_contrast 0.5 \
    --out "$OUT/detection_filtered"
