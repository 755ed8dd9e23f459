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
    BoxesToConditionMapD,
    BoxesToConditionMapd,
    BoxesToConditionMapDict,
    BoxesToYoloD,
    BoxesToYolod,
    BoxesToYoloDict,
    MaskToBoxesD,
    MaskToBoxesd,
    MaskToBoxesDict,
    ValidateBoxesD,
    ValidateBoxesd,
    ValidateBoxesDict,
)
from .condition_encoding import (
    COND_MODES,
    EncodeCondition,
    EncodeConditionD,
    EncodeConditiond,
    EncodeConditionDict,
    check_condition_mode,
    check_label_values,
    condition_channels,
    condition_outputs,
    decode_mask,
    encode_condition,
    mask_to_display,
)
from .copy_paste import (
    Lesion,
    LesionBank,
    RandLesionCopyPaste,
    RandLesionCopyPasteD,
    RandLesionCopyPasted,
    RandLesionCopyPasteDict,
    feather_alpha,
)
from .inpaint import (
    LesionContextCrop,
    LesionContextCropD,
    LesionContextCropd,
    LesionContextCropDict,
    LesionInpaintDataset,
    inpaint_collate,
    lesion_items,
    load_box_file,
)
from .mask_channels import AppendMaskChannelsd
from .mix import SyntheticMix, SyntheticMixD, SyntheticMixd, SyntheticMixDict
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
    CheckImageD,
    CheckImaged,
    CheckImageDict,
    CropResizeToPowerOfTwoD,
    CropResizeToPowerOfTwod,
    CropResizeToPowerOfTwoDict,
    EnsureGrayscaleD,
    EnsureGrayscaled,
    EnsureGrayscaleDict,
    ForegroundCropD,
    ForegroundCropd,
    ForegroundCropDict,
    RandSliceD,
    RandSliced,
    RandSliceDict,
    RightAlignedSquareCropD,
    RightAlignedSquareCropd,
    RightAlignedSquareCropDict,
    ScaleToSymmetricRangeD,
    ScaleToSymmetricRanged,
    ScaleToSymmetricRangeDict,
)

__all__ = [k for k in dir() if not k.startswith("_") and k not in ("annotations", "array", "dictionary", "boxes", "preprocessing", "mix", "copy_paste", "inpaint", "condition_encoding", "mask_channels")]
