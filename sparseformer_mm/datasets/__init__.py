from .checked_dataset import (AnnotationError, BadSampleError,
                              CheckedVideoDataset, SkipBadSamples)
from .synthetic_images import SHAPES, make_shape_dataset, make_shape_image
from .synthetic_videos import (MOTION_CLASSES, make_motion_clip,
                               make_motion_dataset, motion_object_radius)

__all__ = [
    'AnnotationError', 'BadSampleError', 'CheckedVideoDataset',
    'SkipBadSamples', 'SHAPES', 'make_shape_dataset', 'make_shape_image',
    'MOTION_CLASSES', 'make_motion_clip', 'make_motion_dataset',
    'motion_object_radius'
]
