from .sparseformer import EarlyConvolution, SparseFormer
from .video_sparseformer import VideoSparseFormer

__all__ = ['EarlyConvolution', 'SparseFormer', 'VideoSparseFormer']
