from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import (grid_init_offsets, grid_init_rois,
                           make_sampling_points, promote_half, roi_adjust,
                           roi_center_size)
from .sampling import ClipCoordGrad, sample_points
from .unit import (CORTEX_OPS, FOCUS_OPS, Attention, Mlp, SparseFormerUnit,
                   drop_path)

__all__ = [
    'AdaptiveMixing', 'grid_init_offsets', 'grid_init_rois',
    'make_sampling_points', 'promote_half', 'roi_adjust', 'roi_center_size', 'ClipCoordGrad',
    'sample_points', 'CORTEX_OPS', 'FOCUS_OPS', 'Attention', 'Mlp',
    'SparseFormerUnit', 'drop_path'
]
