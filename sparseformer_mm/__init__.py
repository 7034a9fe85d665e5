"""SparseFormer for image and video recognition in the OpenMMLab ecosystem."""
from . import checkpoint_safety, compat

compat.apply_all()
checkpoint_safety.enable()

from . import datasets, engine, models, utils  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
