"""Measurements of what a trained SparseFormer does (not used in training)."""
from .focus import (box_share, evaluate_focus, format_focus_table,
                    load_box_annotations, point_hits, replay_shape_boxes,
                    roi_box_overlap, sample_focus, t_to_frame)

__all__ = [
    'box_share', 'evaluate_focus', 'format_focus_table',
    'load_box_annotations', 'point_hits', 'replay_shape_boxes',
    'roi_box_overlap', 'sample_focus', 't_to_frame'
]
