"""An optimizer wrapper that is AMP where AMP can run and fp32 elsewhere."""
from typing import Optional, Union

import torch
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


def amp_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can be built here.

    The same test as ``AmpOptimWrapper.__init__`` asserts (CUDA, NPU, MLU or
    MUSA), so the two never disagree. ``CUDA_VISIBLE_DEVICES=''`` hides the
    GPUs from it as from the Runner.
    """
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


# Registered in mmengine's root registry: the mmpretrain and mmaction scopes
# (children of the root) both find it, whatever the config's default_scope.
@OPTIM_WRAPPERS.register_module(name='AmpOrFp32OptimWrapper')
def build_amp_or_fp32_optim_wrapper(
        loss_scale: Union[str, float, dict] = 'dynamic',
        dtype: Optional[Union[str, torch.dtype]] = None,
        use_fsdp: bool = False,
        **kwargs) -> OptimWrapper:
    """``AmpOptimWrapper`` with an accelerator, ``OptimWrapper`` without.

    Use it as ``optim_wrapper=dict(type='AmpOrFp32OptimWrapper', ...)``
    where a config wants mixed precision on GPUs but should still train on
    a machine without one (a laptop, CI, the CPU demo). mmengine's
    ``AmpOptimWrapper`` refuses to be built there (``AmpOptimizerWrapper is
    only available training on gpu``), so every entry point (our
    ``tools/train.py``, mmaction2's and mmpretrain's, ``mim train``,
    ``Runner.from_cfg(cfg).train()``) would stop. Without an accelerator
    this builds a plain fp32 ``OptimWrapper`` with the same optimizer,
    clipping and accumulation, drops the AMP-only options and says so once
    in the log. The object returned is exactly mmengine's class in either
    case, so everything that checks ``isinstance(..., AmpOptimWrapper)``
    (e.g. ``SamplingGradScaleHook``) sees the truth.

    To require AMP (and fail without an accelerator), use
    ``type='AmpOptimWrapper'`` (our ``tools/train.py --amp`` does).

    Args:
        loss_scale (str | float | dict): ``AmpOptimWrapper``'s loss scale:
            ``'dynamic'``, a fixed number or ``GradScaler`` arguments.
            Defaults to 'dynamic'.
        dtype (str | torch.dtype, optional): The autocast dtype, e.g.
            ``'bfloat16'``; None is float16. Defaults to None.
        use_fsdp (bool): As in ``AmpOptimWrapper``. Defaults to False.
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Returns:
        OptimWrapper: An ``AmpOptimWrapper`` or an ``OptimWrapper``.
    """
    if amp_available():
        return AmpOptimWrapper(loss_scale=loss_scale, dtype=dtype,
                               use_fsdp=use_fsdp, **kwargs)
    # Built once per Runner.train(), so this is one line per run (and only
    # rank 0's logger prints INFO to the console).
    print_log(
        'No GPU (or NPU/MLU/MUSA) found: AmpOrFp32OptimWrapper trains in '
        'fp32 with OptimWrapper instead of AMP (AmpOptimWrapper).',
        logger='current')
    return OptimWrapper(**kwargs)
