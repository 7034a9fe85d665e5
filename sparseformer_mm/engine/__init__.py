from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .optim_wrappers import amp_available, build_amp_or_fp32_optim_wrapper
from .size_grouped_loops import SizeGroupedTestLoop, SizeGroupedValLoop

__all__ = _hooks_all + [
    'amp_available', 'build_amp_or_fp32_optim_wrapper', 'SizeGroupedTestLoop',
    'SizeGroupedValLoop'
]
