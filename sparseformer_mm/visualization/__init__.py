"""Pictures of SparseFormer's RoIs, tubes and sampling points."""
from .inference import (init_model, is_video_model, load_input, trace_file,
                        trace_model_input)
from .roi_vis import (density_panel, draw_density, draw_rois, frame_points,
                      frame_tokens, make_grid, passes_grid, save_gif,
                      save_png, token_colors, trace_to_pixels, tube_frames,
                      visualize_trace)

__all__ = [
    'init_model', 'is_video_model', 'load_input', 'trace_file',
    'trace_model_input', 'density_panel', 'draw_density', 'draw_rois',
    'frame_points', 'frame_tokens', 'make_grid', 'passes_grid', 'save_gif',
    'save_png', 'token_colors', 'trace_to_pixels', 'tube_frames',
    'visualize_trace'
]
