"""AmpOrFp32OptimWrapper: AMP with an accelerator and fp32 without one, the
loss scale handed to the backbones, and non-finite losses refused or
skipped, in real Runner runs where the loss turns NaN at a known iteration
(a NaN input at a known sample)."""
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner
from torch.utils.data import Dataset

import sparseformer_mm.engine.optim_wrappers as optim_wrappers
from sparseformer_mm.checkpoint_safety import load_weights_only
from sparseformer_mm.engine import (AmpOrFp32OptimWrapper, NonFiniteLossError,
                                    NonFiniteWeightsError)
from sparseformer_mm.models import build_classifier
from toy_models import TinyRegressor

NANO = dict(num_tokens=4, focus_dims=64, cortex_dims=64, cortex_depth=1,
            num_points=4)


def _cfg(params=None, **kwargs):
    params = params or [torch.nn.Parameter(torch.zeros(2))]
    return dict(type='AmpOrFp32OptimWrapper',
                optimizer=torch.optim.SGD(params, lr=0.1), **kwargs)


@pytest.fixture
def pretend_gpu(monkeypatch):
    """An accelerator is found, and it is the CPU: the AMP step is built
    with its device as a parameter, so the CPU's GradScaler stands in for
    the CUDA one (which would disable itself here)."""
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: True)
    monkeypatch.setattr(optim_wrappers, 'get_device', lambda: 'cpu')


# -- building: AMP or fp32 ---------------------------------------------------
def test_one_class_found_from_both_scopes():
    from mmaction.registry import OPTIM_WRAPPERS as MMACTION
    from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN
    for registry in (MMACTION, MMPRETRAIN):
        assert registry.get('AmpOrFp32OptimWrapper') is AmpOrFp32OptimWrapper


def test_fp32_without_accelerator_keeps_the_other_options(monkeypatch,
                                                          capsys):
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: False)
    MMLogger.get_instance('test_optim_wrappers')  # the 'current' logger
    wrapper = OPTIM_WRAPPERS.build(_cfg(
        loss_scale=dict(init_scale=2.**10), dtype='bfloat16',
        clip_grad=dict(max_norm=5.0), accumulative_counts=2))
    assert not wrapper.amp and wrapper.loss_scale == 1.0
    assert wrapper.clip_grad_kwargs == dict(max_norm=5.0)
    assert wrapper._accumulative_counts == 2
    assert 'trains in fp32 instead of AMP' in capsys.readouterr().out
    assert 'loss_scaler' not in wrapper.state_dict()


def test_amp_with_accelerator_passes_loss_scale_and_dtype(pretend_gpu):
    wrapper = OPTIM_WRAPPERS.build(_cfg(
        loss_scale=dict(init_scale=2.**10), dtype='bfloat16',
        clip_grad=dict(max_norm=5.0)))
    assert wrapper.amp and isinstance(wrapper, AmpOptimWrapper)
    assert wrapper.cast_dtype is torch.bfloat16
    assert wrapper.loss_scale == 2.**10
    assert wrapper.clip_grad_kwargs == dict(max_norm=5.0)
    assert 'loss_scaler' in wrapper.state_dict()


def test_amp_false_is_fp32_everywhere_and_amp_true_requires_a_gpu(
        pretend_gpu, monkeypatch):
    assert not OPTIM_WRAPPERS.build(_cfg(amp=False)).amp
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: False)
    with pytest.raises(RuntimeError, match="needs a GPU.*amp='auto'"):
        OPTIM_WRAPPERS.build(_cfg(amp=True))
    with pytest.raises(ValueError, match="'raise' or 'skip'"):
        OPTIM_WRAPPERS.build(_cfg(non_finite_loss='ignore'))


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


def test_fp32_resumes_an_amp_checkpoint(pretend_gpu, monkeypatch):
    params = [torch.nn.Parameter(torch.zeros(2))]
    state = OPTIM_WRAPPERS.build(_cfg(params)).state_dict()
    assert 'loss_scaler' in state
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: False)
    OPTIM_WRAPPERS.build(_cfg(params)).load_state_dict(state)


# -- the loss scale reaches the backbone ------------------------------------
def _told_scales(wrapper, model):
    seen = []
    model.backbone.set_loss_scale = seen.append  # record what it is told
    with wrapper.optim_context(model):
        pass
    return seen


def test_optim_context_hands_the_loss_scale_to_the_backbone(pretend_gpu,
                                                            monkeypatch):
    model = build_classifier(NANO, 3)
    assert callable(model.backbone.set_loss_scale)  # the backbone's API
    amp = OPTIM_WRAPPERS.build(_cfg(list(model.parameters()),
                                    loss_scale=dict(init_scale=2.**12)))
    assert _told_scales(amp, model) == [2.**12]
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: False)
    fp32 = OPTIM_WRAPPERS.build(_cfg(list(model.parameters())))
    assert _told_scales(fp32, model) == [1.0]


def test_scaled_training_step_matches_unscaled():
    """A fp16-style scaled backward, unscaled, gives the fp32 gradients
    when the backbone is told the scale."""
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


def test_fp16_autocast_without_a_scale_setter_warns():
    model = build_classifier(NANO, 3).train()
    with pytest.warns(UserWarning, match='AmpOrFp32OptimWrapper'):
        with torch.autocast('cpu', dtype=torch.float16):
            model(torch.randn(1, 3, 32, 32), mode='tensor')


# -- non-finite losses, in real Runner runs ---------------------------------
class NaNPoints(Dataset):
    """Sample ``i`` is ``x = (i, 1) / 8``; those in ``nan_at`` are NaN."""

    def __init__(self, n=6, nan_at=()):
        self.n, self.nan_at = n, set(nan_at)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.tensor([i / 8, 1.0])
        if i in self.nan_at:
            x[0] = float('nan')
        return dict(inputs=x, labels=torch.tensor([0.5]))


def _run(work_dir, nan_at, optim=None, max_iters=6, checkpoint=None,
         **kwargs):
    return Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=NaNPoints(6, nan_at), batch_size=1, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(type='AmpOrFp32OptimWrapper',
                           optimizer=dict(type='SGD', lr=0.1),
                           **(optim or {})),
        default_hooks=dict(checkpoint=checkpoint or dict(
            type='SafeCheckpointHook', interval=1, by_epoch=False,
            backend_args=dict(backend='atomic_local'))),
        log_level='WARNING', experiment_name=osp.basename(str(work_dir)),
        **kwargs)


def _weights(work_dir, it):
    ckpt = load_weights_only(osp.join(work_dir, f'iter_{it}.pth'))
    return ckpt['state_dict']


def test_plain_optim_wrapper_lets_nan_reach_the_checkpoint(tmp_path):
    # the failure the wrapper exists for: with mmengine's OptimWrapper,
    # sample 3 (iteration 4) poisons the weights and their checkpoint
    runner = _run(tmp_path, nan_at=[3], max_iters=4,
                  checkpoint=dict(type='CheckpointHook', interval=1,
                                  by_epoch=False))
    runner.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
    runner.train()
    assert torch.isnan(_weights(tmp_path, 4)['fc.weight']).any()


def test_raise_names_the_iteration_and_keeps_the_last_good_checkpoint(
        tmp_path):
    runner = _run(tmp_path, nan_at=[3])
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'loss is nan at iteration 4.' in msg
    assert f'The last checkpoint is {osp.join(tmp_path, "iter_3.pth")}' in msg
    assert "non_finite_loss='skip'" in msg
    assert not osp.exists(osp.join(tmp_path, 'iter_4.pth'))
    last = _weights(tmp_path, 3)
    assert all(torch.isfinite(v).all() for v in last.values())
    # the weights in memory were not touched by the NaN step either
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, last[k]), k


def test_skip_drops_the_step_and_training_finishes(tmp_path):
    runner = _run(tmp_path, nan_at=[3], optim=dict(non_finite_loss='skip'))
    runner.train()
    assert runner.iter == 6
    assert runner.optim_wrapper.skipped == [4]
    # iteration 4's save came right after its skipped step: held back
    assert not osp.exists(osp.join(tmp_path, 'iter_4.pth'))
    before, after = _weights(tmp_path, 3), _weights(tmp_path, 5)
    final = runner.model.state_dict()
    assert all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(before['fc.weight'], after['fc.weight'])
    # step 4 changed nothing: iteration 5's weights are one SGD step on
    # sample 4 from iteration 3's (MSE: d/dw = 2 (w.x + b - y) x)
    x, w, b = torch.tensor([4 / 8, 1.0]), before['fc.weight'][0], \
        before['fc.bias']
    residual = 2 * (w @ x + b - 0.5)
    torch.testing.assert_close(after['fc.weight'][0], w - 0.1 * residual * x)
    torch.testing.assert_close(after['fc.bias'], b - 0.1 * residual)


def test_skip_gives_up_after_too_many_in_a_row(tmp_path):
    runner = _run(tmp_path, nan_at=[1, 2, 3, 4],
                  optim=dict(non_finite_loss='skip', max_consecutive_skips=2))
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'iteration 4 after 2 consecutive skipped' in msg, msg
    # the checkpoint named is the last one before the skips (the saves
    # after iterations 2 and 3 were held back)
    assert f'The last checkpoint is {osp.join(tmp_path, "iter_1.pth")}' \
        in msg, msg
    assert not osp.exists(osp.join(tmp_path, 'iter_2.pth'))


@pytest.mark.parametrize('interval', [1, 2])
def test_non_finite_weights_are_never_saved(tmp_path, interval):
    # lr 0.1 for two iterations, then inf: iteration 3 has a finite loss
    # but its step makes the weights non-finite. interval 1: the save after
    # iteration 3 refuses them (SafeCheckpointHook); interval 2: iteration
    # 4's non-finite loss finds them (the wrapper, in skip mode).
    runner = _run(
        tmp_path, nan_at=[], optim=dict(non_finite_loss='skip'),
        checkpoint=dict(type='SafeCheckpointHook', interval=interval,
                        by_epoch=False, max_keep_ckpts=1,
                        backend_args=dict(backend='atomic_local')),
        param_scheduler=dict(type='MultiStepLR', by_epoch=False,
                             milestones=[2], gamma=float('inf')))
    with pytest.raises(NonFiniteWeightsError) as info:
        runner.train()
    msg = str(info.value)
    where = 'iteration 4' if interval == 2 else 'iteration 3'
    assert where in msg, msg
    assert f'The last checkpoint is {osp.join(tmp_path, "iter_2.pth")}' \
        in msg, msg
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth'))
    assert names == ['iter_2.pth']
    with open(osp.join(tmp_path, 'last_checkpoint')) as f:
        assert f.read() == osp.join(tmp_path, 'iter_2.pth')
    assert all(torch.isfinite(v).all()
               for v in _weights(tmp_path, 2).values())


def test_a_copied_work_dir_names_its_own_checkpoint(tmp_path):
    """Resumed in a copy of the work dir, the error names the copy's file,
    not the original's absolute path its checkpoints record."""
    import shutil
    _run(tmp_path / 'a', nan_at=[3], max_iters=3).train()
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    runner = _run(tmp_path / 'b', nan_at=[3], resume=True)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    assert f'The last checkpoint is {tmp_path / "b" / "iter_3.pth"};' in \
        str(info.value), str(info.value)
