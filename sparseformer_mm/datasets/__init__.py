from .checked_dataset import (AnnotationError, BadSampleError,
                              CheckedVideoDataset, SkipBadSamples)

__all__ = [
    'AnnotationError', 'BadSampleError', 'CheckedVideoDataset',
    'SkipBadSamples'
]
