from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import (grid_init_offsets, grid_init_rois,
                           make_sampling_points, promote_half,
                           resample_grid_rois, roi_adjust, roi_center_size,
                           roi_sincos, tube_rois, xy_to_xyt)
from .sampling import ClipCoordGrad, sample_points
from .unit import (ACTIVATIONS, OPS, Attention, Mlp, Op, SparseFormerUnit,
                   TokenState, drop_path, inflate_unit, quick_gelu, unit_ops)

__all__ = [
    'AdaptiveMixing', 'grid_init_offsets', 'grid_init_rois',
    'make_sampling_points', 'promote_half', 'resample_grid_rois',
    'roi_adjust', 'roi_center_size', 'roi_sincos', 'tube_rois', 'xy_to_xyt',
    'ClipCoordGrad', 'sample_points', 'ACTIVATIONS', 'OPS', 'Attention',
    'Mlp', 'Op', 'SparseFormerUnit', 'TokenState', 'drop_path',
    'inflate_unit', 'quick_gelu', 'unit_ops'
]
