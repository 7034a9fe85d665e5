from ...archs import CORTEX_OPS, FOCUS_OPS
from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import (grid_init_offsets, grid_init_rois,
                           make_sampling_points, promote_half, roi_adjust,
                           roi_center_size, roi_sincos)
from .sampling import ClipCoordGrad, sample_points
from .unit import (ACTIVATIONS, OPS, Attention, Mlp, Op, SparseFormerUnit,
                   TokenState, drop_path, quick_gelu)

__all__ = [
    'AdaptiveMixing', 'grid_init_offsets', 'grid_init_rois',
    'make_sampling_points', 'promote_half', 'roi_adjust', 'roi_center_size',
    'roi_sincos', 'ClipCoordGrad', 'sample_points', 'ACTIVATIONS',
    'CORTEX_OPS', 'FOCUS_OPS', 'OPS', 'Attention', 'Mlp', 'Op',
    'SparseFormerUnit', 'TokenState', 'drop_path', 'quick_gelu'
]
