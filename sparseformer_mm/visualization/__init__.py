"""Pictures of SparseFormer's RoIs, tubes and sampling points.

The drawing functions (:mod:`.roi_vis`, cv2 and PIL) are imported on first
use, so ``import sparseformer_mm`` (which registers
``RoIVisualizationHook``) does not load them for runs that draw nothing.
"""
import importlib

from .inference import (init_model, is_video_model, load_input, predict,
                        trace_file, trace_model_input, warn_non_finite)

_DRAWING = ('density_panel', 'draw_density', 'draw_rois', 'frame_points',
            'frame_tokens', 'make_grid', 'passes_grid', 'save_gif',
            'save_png', 'token_colors', 'trace_to_pixels', 'tube_frames',
            'visualize_trace')

__all__ = [
    'init_model', 'is_video_model', 'load_input', 'predict', 'trace_file',
    'trace_model_input', 'warn_non_finite', *_DRAWING
]


def __getattr__(name: str):
    # PEP 562: called only for names not found in the module.
    if name in _DRAWING:
        return getattr(importlib.import_module('.roi_vis', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_DRAWING))
