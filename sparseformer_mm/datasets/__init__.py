from .checked_dataset import (AnnotationError, BadSampleError,
                              CheckedVideoDataset, SkipBadSamples)
from .decoding import (BACKENDS, TorchCodecDecode, TorchCodecInit,
                       VideoDecode, VideoDecodeError, VideoInit,
                       backend_problem, open_video)

__all__ = [
    'AnnotationError', 'BadSampleError', 'CheckedVideoDataset',
    'SkipBadSamples', 'BACKENDS', 'TorchCodecDecode', 'TorchCodecInit',
    'VideoDecode', 'VideoDecodeError', 'VideoInit', 'backend_problem',
    'open_video'
]
