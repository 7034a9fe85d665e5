from .sparseformer import EarlyConvolution, SparseFormer
from .video_sparseformer import (VideoSparseFormer, backbone_state_dict,
                                 inflate_image_state_dict, tube_rois)

__all__ = [
    'EarlyConvolution', 'SparseFormer', 'VideoSparseFormer',
    'backbone_state_dict', 'inflate_image_state_dict', 'tube_rois'
]
