from .sparseformer import (STAGE_DEFAULTS, EarlyConvolution, SparseFormer,
                           v1_stages)
from .video_sparseformer import VideoSparseFormer

__all__ = ['STAGE_DEFAULTS', 'EarlyConvolution', 'SparseFormer',
           'VideoSparseFormer', 'v1_stages']
