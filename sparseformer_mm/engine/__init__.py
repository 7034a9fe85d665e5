from .hooks import *  # noqa: F401,F403
from .checkpoint_load import checkpoint_to_load, newest_checkpoint
from .hooks import __all__ as _hooks_all
from .optim_wrappers import (AmpOrFp32OptimWrapper, NonFiniteLossError,
                             NonFiniteWeightsError, amp_available)
from .size_grouped_loops import SizeGroupedTestLoop, SizeGroupedValLoop

__all__ = _hooks_all + [
    'AmpOrFp32OptimWrapper', 'NonFiniteLossError', 'NonFiniteWeightsError',
    'amp_available', 'checkpoint_to_load',
    'newest_checkpoint', 'SizeGroupedTestLoop', 'SizeGroupedValLoop'
]
