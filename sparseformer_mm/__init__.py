"""SparseFormer for image and video recognition in the OpenMMLab ecosystem."""
from . import checkpoint_safety, compat  # noqa: F401  (atomic_local)

compat.apply_all()

from . import datasets, engine, models, utils  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
