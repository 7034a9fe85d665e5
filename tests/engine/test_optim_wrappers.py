"""AmpOrFp32OptimWrapper: AMP with an accelerator, fp32 without one."""
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import OPTIM_WRAPPERS

import sparseformer_mm.engine.optim_wrappers as optim_wrappers
from sparseformer_mm.engine import current_loss_scale


def _cfg(**kwargs):
    params = [torch.nn.Parameter(torch.zeros(2))]
    return dict(type='AmpOrFp32OptimWrapper',
                optimizer=torch.optim.SGD(params, lr=0.1), **kwargs)


def test_found_from_both_scopes():
    from mmaction.registry import OPTIM_WRAPPERS as MMACTION
    from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN
    for registry in (MMACTION, MMPRETRAIN):
        assert registry.get('AmpOrFp32OptimWrapper') is \
            optim_wrappers.build_amp_or_fp32_optim_wrapper


def test_fp32_without_accelerator_keeps_the_other_options(monkeypatch,
                                                          capsys):
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: False)
    MMLogger.get_instance('test_optim_wrappers')  # the 'current' logger
    wrapper = OPTIM_WRAPPERS.build(_cfg(
        loss_scale=dict(init_scale=2.**10), dtype='bfloat16',
        clip_grad=dict(max_norm=5.0), accumulative_counts=2))
    assert type(wrapper) is OptimWrapper
    assert wrapper.clip_grad_kwargs == dict(max_norm=5.0)
    assert wrapper._accumulative_counts == 2
    assert 'trains in fp32 with OptimWrapper instead of AMP' in \
        capsys.readouterr().out


def test_amp_with_accelerator_passes_loss_scale_and_dtype(monkeypatch):
    # Pretend a GPU: AmpOptimWrapper builds, with a CPU GradScaler standing
    # in for the CUDA one (which would disable itself here).
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'GradScaler',
                        lambda **kw: torch.amp.GradScaler('cpu', **kw))
    wrapper = OPTIM_WRAPPERS.build(_cfg(
        loss_scale=dict(init_scale=2.**10), dtype='bfloat16',
        clip_grad=dict(max_norm=5.0)))
    assert isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.cast_dtype is torch.bfloat16
    assert current_loss_scale(wrapper) == 2.**10  # what the hook reads
    assert wrapper.clip_grad_kwargs == dict(max_norm=5.0)


def test_amp_available_agrees_with_amp_optim_wrapper():
    """On this machine: the fallback is taken exactly when mmengine's
    AmpOptimWrapper refuses to build."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    try:
        AmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.1))
        builds = True
    except AssertionError:
        builds = False
    assert optim_wrappers.amp_available() == builds
