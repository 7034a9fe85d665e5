"""NonFiniteLossHook in real Runner runs where the loss turns NaN at a known
iteration (a NaN input at a known sample)."""
import os
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import Dataset

from sparseformer_mm.checkpoint_safety import load_weights_only
from sparseformer_mm.engine.hooks import (NonFiniteLossError,
                                          NonFiniteLossHook,
                                          NonFiniteWeightsError)
from sparseformer_mm.engine.hooks.non_finite_loss_hook import \
    non_finite_tensors
from toy_models import TinyRegressor


class Points(Dataset):
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


def _run(work_dir, nan_at, hooks, max_iters=6, checkpoint=None, **kwargs):
    runner = Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Points(6, nan_at), batch_size=1, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=checkpoint or dict(
            type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=hooks,
        log_level='WARNING', **kwargs)
    return runner


def _weights(work_dir, it):
    ckpt = load_weights_only(osp.join(work_dir, f'iter_{it}.pth'))
    return ckpt['state_dict']


def test_without_the_hook_nan_reaches_the_checkpoint(tmp_path):
    # the failure the hook exists for: sample 3 (iteration 4) poisons the
    # weights and the checkpoint of that iteration
    _run(tmp_path, nan_at=[3], hooks=[], max_iters=4).train()
    assert torch.isnan(_weights(tmp_path, 4)['fc.weight']).any()


def test_raise_names_the_iteration_and_keeps_the_last_good_checkpoint(
        tmp_path):
    runner = _run(tmp_path, nan_at=[3], hooks=[dict(type='NonFiniteLossHook')])
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    assert 'loss is nan at iteration 4.' in msg
    assert f'The last checkpoint is {osp.join(tmp_path, "iter_3.pth")}' in msg
    assert "action='skip'" in msg
    assert not osp.exists(osp.join(tmp_path, 'iter_4.pth'))
    last = _weights(tmp_path, 3)
    assert all(torch.isfinite(v).all() for v in last.values())
    # the weights in memory were not touched by the NaN step either
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, last[k]), k


def test_skip_drops_the_step_and_training_finishes(tmp_path):
    runner = _run(tmp_path, nan_at=[3],
                  hooks=[dict(type='NonFiniteLossHook', action='skip')])
    runner.train()
    assert runner.iter == 6
    hook = next(h for h in runner.hooks if isinstance(h, NonFiniteLossHook))
    assert hook.skipped == [4]
    before, after = _weights(tmp_path, 3), _weights(tmp_path, 4)
    for k in before:
        assert torch.equal(before[k], after[k]), k  # step 4 changed nothing
    final = runner.model.state_dict()
    assert all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(final['fc.weight'], after['fc.weight'])


def test_skip_gives_up_after_too_many_in_a_row(tmp_path):
    runner = _run(tmp_path, nan_at=[1, 2, 3, 4],
                  hooks=[dict(type='NonFiniteLossHook', action='skip',
                              max_consecutive_skips=2)])
    with pytest.raises(NonFiniteLossError,
                       match='iteration 4 after 3 consecutive skipped'):
        runner.train()


def test_bad_action_is_rejected():
    with pytest.raises(ValueError, match="'raise' or 'skip'"):
        NonFiniteLossHook(action='ignore')


class AllCheckpointsFinite(Hook):
    """After every iteration (and its save): every checkpoint on disk holds
    finite tensors only."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        for name in os.listdir(runner.work_dir):
            if name.endswith('.pth'):
                ckpt = load_weights_only(osp.join(runner.work_dir, name))
                assert not non_finite_tensors(ckpt['state_dict']), name


@pytest.mark.parametrize('interval', [1, 2])
def test_skip_never_checkpoints_non_finite_weights(tmp_path, interval):
    # lr 0.1 for two iterations, then inf: iteration 3 has a finite loss
    # but its step makes the weights inf, and every later loss is
    # non-finite. interval=1: the save after iteration 3 refuses them;
    # interval=2: iteration 4's non-finite loss finds them.
    runner = _run(
        tmp_path, nan_at=[], max_iters=6,
        hooks=[dict(type='NonFiniteLossHook', action='skip'),
               AllCheckpointsFinite()],
        checkpoint=dict(type='SafeCheckpointHook', interval=interval,
                        by_epoch=False, max_keep_ckpts=1),
        param_scheduler=dict(type='MultiStepLR', by_epoch=False,
                             milestones=[2], gamma=float('inf')))
    with pytest.raises(NonFiniteWeightsError) as info:
        runner.train()
    msg = str(info.value)
    last = osp.join(tmp_path, 'iter_2.pth')
    assert f'The last checkpoint is {last}; resume from it' in msg, msg
    assert 'optim_wrapper.optimizer.lr' in msg
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) \
        == ['iter_2.pth']
    assert not non_finite_tensors(_weights(tmp_path, 2))
    where = 'iteration 4' if interval == 2 else 'iteration 3'
    assert where in msg, msg
