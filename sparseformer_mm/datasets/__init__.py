from .synthetic_images import SHAPES, make_shape_dataset, make_shape_image

__all__ = ['SHAPES', 'make_shape_dataset', 'make_shape_image']
