import types

import pytest
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from sparseformer_mm.engine import (SamplingGradScaleHook, amp_available,
                                    current_loss_scale)
from sparseformer_mm.models import build_classifier

NANO = dict(num_tokens=4, focus_dims=64, cortex_dims=64, cortex_depth=1,
            num_points=4)


def _cpu_amp_wrapper(optimizer, scale):
    # AmpOptimWrapper refuses to build without a GPU; give it a real CPU
    # GradScaler holding the scale a fp16 run would be using.
    wrapper = AmpOptimWrapper.__new__(AmpOptimWrapper)
    OptimWrapper.__init__(wrapper, optimizer)
    wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=scale)
    wrapper.cast_dtype = torch.float16
    return wrapper


def test_hook_feeds_the_loss_scale_to_the_backbone():
    model = build_classifier(NANO, 3)
    assert callable(model.backbone.set_loss_scale)  # the backbone's API
    seen = []
    model.backbone.set_loss_scale = seen.append  # record what it is told
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = types.SimpleNamespace(model=model,
                                   optim_wrapper=_cpu_amp_wrapper(opt, 2.**12))
    hook = SamplingGradScaleHook()
    hook.before_train_iter(runner, 0)
    runner.optim_wrapper = OptimWrapper(opt)  # fp32 / no scaler
    hook.before_train_iter(runner, 1)
    assert seen == [2.**12, 1.0]
    assert current_loss_scale(OptimWrapper(opt)) == 1.0


def test_hook_reads_the_scale_of_amp_or_fp32_wrapper():
    """AmpOrFp32OptimWrapper builds mmengine's own classes, so the hook's
    scale is the truth in both modes: 1.0 for the CPU (fp32) build here,
    the GradScaler's scale for the AMP one."""
    model = build_classifier(NANO, 3)
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='AmpOrFp32OptimWrapper', loss_scale=dict(init_scale=2.**10),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    if amp_available():  # the GPU machine
        assert isinstance(wrapper, AmpOptimWrapper)
        assert current_loss_scale(wrapper) == 2.**10
    else:
        assert type(wrapper) is OptimWrapper
        assert current_loss_scale(wrapper) == 1.0


def test_scaled_training_step_matches_unscaled():
    """A fp16-style scaled backward, unscaled, gives the fp32 gradients."""
    x = torch.randn(2, 3, 32, 32) * 3

    def grads(scale, told=True):
        torch.manual_seed(0)
        model = build_classifier(NANO, 3).train()
        model.backbone.set_loss_scale(scale if told else 1.0)
        with torch.no_grad():  # make the offsets (and their grads) non-trivial
            model.backbone.layers[0].roi_offset_module[1].weight.normal_(0, 1)
        logits = model(x, mode='tensor')
        (logits.square().sum() * 1e3 * scale).backward()
        return {n: p.grad / scale for n, p in model.named_parameters()
                if p.grad is not None}

    g1, g_scaled = grads(1.0), grads(2.**10)
    for n in g1:
        torch.testing.assert_close(g_scaled[n], g1[n], rtol=1e-4, atol=1e-6)
    # the clip binds here: a scale-blind clip changes the RoI gradients
    blind = grads(2.**10, told=False)
    roi = 'backbone.initial_roi.weight'
    assert (blind[roi] - g1[roi]).abs().max() > 1e-3 * g1[roi].abs().max()


def test_fp16_autocast_without_hook_warns():
    model = build_classifier(NANO, 3).train()
    with pytest.warns(UserWarning, match='SamplingGradScaleHook'):
        with torch.autocast('cpu', dtype=torch.float16):
            model(torch.randn(1, 3, 32, 32), mode='tensor')
