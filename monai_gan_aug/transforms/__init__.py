# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""MONAI transforms (array + dictionary pairs): the papers' preprocessing, box/mask conditions."""

from __future__ import annotations

from .boxes.array import (
    BoxesToConditionMap,
    BoxesToYolo,
    MaskToBoxes,
    ValidateBoxes,
    boxes_to_condition_map,
    boxes_to_yolo_lines,
    mask_to_boxes,
    yolo_lines_to_boxes,
)
from .boxes.dictionary import (
    BoxesToConditionMapd,
    BoxesToConditionMapD,
    BoxesToConditionMapDict,
    BoxesToYolod,
    BoxesToYoloD,
    BoxesToYoloDict,
    MaskToBoxesd,
    MaskToBoxesD,
    MaskToBoxesDict,
    ValidateBoxesd,
    ValidateBoxesD,
    ValidateBoxesDict,
)
from .mix import SyntheticMix, SyntheticMixd, SyntheticMixD, SyntheticMixDict
from .preprocessing.array import (
    CheckImage,
    CropResizeToPowerOfTwo,
    EnsureGrayscale,
    ForegroundCrop,
    RandSlice,
    RightAlignedSquareCrop,
    ScaleToSymmetricRange,
)
from .preprocessing.dictionary import (
    CheckImaged,
    CheckImageD,
    CheckImageDict,
    CropResizeToPowerOfTwod,
    CropResizeToPowerOfTwoD,
    CropResizeToPowerOfTwoDict,
    EnsureGrayscaled,
    EnsureGrayscaleD,
    EnsureGrayscaleDict,
    ForegroundCropd,
    ForegroundCropD,
    ForegroundCropDict,
    RandSliced,
    RandSliceD,
    RandSliceDict,
    RightAlignedSquareCropd,
    RightAlignedSquareCropD,
    RightAlignedSquareCropDict,
    ScaleToSymmetricRanged,
    ScaleToSymmetricRangeD,
    ScaleToSymmetricRangeDict,
)

__all__ = [k for k in dir() if not k.startswith("_") and k not in ("annotations", "array", "dictionary", "boxes", "preprocessing", "mix")]
