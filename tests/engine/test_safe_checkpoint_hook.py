"""SafeCheckpointHook's ``save_best`` path in real Runner runs: best files
rotate (one left, the best by the scores), the pointers name what is on
disk, a failed best save keeps the previous best, and SIGKILLs inside best
saves (real processes) leave a best that the resumed run keeps.

The validation score of epoch N is ``SCORES[N]`` (a metric that reads the
epoch), so which file is the best is known in advance. This file also runs
as a script (``python test_safe_checkpoint_hook.py WORK MAX_EPOCHS``), the
training the kill test starts and kills.
"""
import errno
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.registry import METRICS
from mmengine.runner import Runner

from sparseformer_mm.engine import NonFiniteLossError
from toy_models import Points, TinyRegressor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SCORES = {1: 0.2, 2: 0.5, 3: 0.4, 4: 0.7, 5: 0.6, 6: 0.9, 7: 0.8}
# the best file after each epoch's validation, for an unbroken run
BEST_AFTER = {1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 6, 7: 6}


def best_name(epoch):
    return f'best_score_epoch_{epoch}.pth'


@METRICS.register_module(force=True)
class ScriptedScore(BaseMetric):
    """``score = SCORES[epoch]``; the epoch comes from the message hub
    (the epoch index before the one that just ended)."""

    default_prefix = ''

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        epoch = MessageHub.get_current_instance().get_info('epoch') + 1
        return dict(score=SCORES[epoch])


def make_runner(work_dir, max_epochs, resume=False, hooks=(), name='run',
                log_level='WARNING'):
    loader = dict(dataset=Points(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=dict(type='ScriptedScore'), val_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(
            type='SafeCheckpointHook', interval=1, max_keep_ckpts=1,
            save_best='score', rule='greater',
            backend_args=dict(backend='atomic_local'))),
        custom_hooks=list(hooks), resume=resume, log_level=log_level,
        # distinct message hubs for runners of one process and second
        experiment_name=name)


def files(work_dir, prefix):
    return sorted(n for n in os.listdir(work_dir) if n.startswith(prefix)
                  and n.endswith('.pth'))


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def pointer(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


class Record(Hook):
    """After each validation (and the best save): what is on disk."""

    priority = 'LOWEST'

    def __init__(self):
        self.seen = {}

    def after_val_epoch(self, runner, metrics=None):
        work = runner.work_dir
        last = pointer(work)
        state = runner.model.state_dict()
        bests = files(work, 'best_')
        best_weights = load(osp.join(work, bests[-1]))['state_dict']
        self.seen[runner.epoch] = dict(
            bests=bests, regular=files(work, 'epoch_'),
            pointer=osp.basename(last),
            hub=(osp.basename(runner.message_hub.get_info('best_ckpt')),
                 runner.message_hub.get_info('best_score')),
            # what the checkpoint a resume reads records as the best
            pointer_hub=osp.basename(
                load(last)['message_hub']['runtime_info']['best_ckpt']),
            best_is_model=all(torch.equal(best_weights[k], v)
                              for k, v in state.items()))


def test_best_files_rotate_and_the_pointers_follow(tmp_path):
    record = Record()
    make_runner(tmp_path, 7, hooks=[record]).train()
    for epoch, best in BEST_AFTER.items():
        seen = record.seen[epoch]
        assert seen['bests'] == [best_name(best)], (epoch, seen)
        assert seen['regular'] == [f'epoch_{epoch}.pth'], (epoch, seen)
        assert seen['pointer'] == f'epoch_{epoch}.pth', (epoch, seen)
        assert seen['hub'] == (best_name(best), SCORES[best]), (epoch, seen)
        assert seen['pointer_hub'] == best_name(best), (epoch, seen)
        # the best file holds the weights validated at its epoch
        assert seen['best_is_model'] == (best == epoch), (epoch, seen)


def test_failed_best_save_keeps_the_previous_best(tmp_path, monkeypatch):
    real_replace = os.replace

    def disk_full_at_best_4(src, dst, **kwargs):
        if osp.basename(os.fspath(dst)) == best_name(4):
            raise OSError(errno.ENOSPC, 'No space left on device', dst)
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, 'replace', disk_full_at_best_4)
    try:
        make_runner(tmp_path, 4, name='full').train()
    except OSError as e:
        assert e.errno == errno.ENOSPC
    else:
        raise AssertionError('the best save of epoch 4 did not fail')
    monkeypatch.undo()
    # the previous best is whole; no temporary file; the pointer and the
    # checkpoint it names record that best
    assert files(tmp_path, 'best_') == [best_name(2)]
    assert load(tmp_path / best_name(2))['meta']['epoch'] == 2
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    assert pointer(tmp_path) == str(tmp_path / 'epoch_4.pth')
    info = load(tmp_path / 'epoch_4.pth')['message_hub']['runtime_info']
    assert (osp.basename(info['best_ckpt']), info['best_score']) == \
        (best_name(2), SCORES[2])
    # a resume goes on from it: epoch 5's 0.6 beats epoch 2's 0.5 and
    # epoch 6's 0.9 beats that, each time one best file remains
    runner = make_runner(tmp_path, 6, resume=True, name='resumed')
    runner.train()
    assert files(tmp_path, 'best_') == [best_name(6)]
    assert runner.message_hub.get_info('best_score') == SCORES[6]


def test_copied_or_moved_work_dir_rotates_its_own_best(tmp_path):
    """The checkpoints of a copied or moved work dir name the original's
    absolute paths: a new best in the copy must not delete the original's,
    and in a moved one it must replace the moved best file."""
    original, copy, moved = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    make_runner(original, 4, name='original').train()
    shutil.copytree(original, copy)
    runner = make_runner(copy, 6, resume=True, name='copy')
    runner.train()
    assert files(copy, 'best_') == [best_name(6)]
    assert runner.message_hub.get_info('best_ckpt') == str(copy /
                                                           best_name(6))
    assert files(original, 'best_') == [best_name(4)]  # untouched
    assert files(original, 'epoch_') == ['epoch_4.pth']

    original.rename(moved)
    # (CheckpointLoadHook, as in the runtimes, resumes from the moved
    # pointer)
    runner = make_runner(moved, 6, resume=True, name='moved',
                         hooks=[dict(type='CheckpointLoadHook')])
    runner.train()
    assert files(moved, 'best_') == [best_name(6)]
    assert runner.message_hub.get_info('best_ckpt') == str(moved /
                                                           best_name(6))


@pytest.mark.parametrize('max_epochs', [3, 5])
def test_skip_mode_keeps_the_last_good_checkpoint(tmp_path, max_epochs):
    """Issue 23 item 3: the lr jumps after epoch 1 so far that the first
    step of epoch 2 (a finite loss) ruins the weights with finite values;
    every later loss is non-finite and skipped. No checkpoint of those
    weights is written, epoch_1.pth is not rotated out (max_keep_ckpts=2),
    and the run does not end well: it names epoch_1.pth."""
    # 4 iterations per epoch
    loader = dict(dataset=Points(), batch_size=1, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    runner = Runner(
        model=TinyRegressor(), work_dir=str(tmp_path),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(type='AmpOrFp32OptimWrapper',
                           non_finite_loss='skip', max_consecutive_skips=10,
                           optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=True,
                             milestones=[1], gamma=1e30),
        default_hooks=dict(checkpoint=dict(
            type='SafeCheckpointHook', interval=1, max_keep_ckpts=2,
            backend_args=dict(backend='atomic_local'))),
        log_level='WARNING', experiment_name=f'blow_up_{max_epochs}')
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    good = str(tmp_path / 'epoch_1.pth')
    assert good in msg, msg
    if max_epochs == 3:  # ends inside the run of skips (7 of them)
        assert 'Training ended after 7 step(s) in a row skipped' in msg, msg
    else:  # the 11th skip in a row (iteration 16) stops it
        assert 'iteration 16 after 10 consecutive skipped' in msg, msg
    assert files(tmp_path, 'epoch_') == ['epoch_1.pth']
    assert pointer(tmp_path) == good
    # the weights in memory are ruined but finite: only the skips tell
    assert all(torch.isfinite(v).all()
               for v in runner.model.state_dict().values())
    assert runner.model.fc.weight.abs().max() > 1e20
    weights = load(good)['state_dict']['fc.weight']
    assert weights.abs().max() < 10


def test_unknown_checkpoint_key_fails_when_the_hook_is_built(tmp_path):
    """Issue 23 item 6: a typo fails at Runner construction, naming the
    key and the close match (mmengine: at the first save, an epoch later)."""
    with pytest.raises(TypeError) as info:
        Runner(model=TinyRegressor(), work_dir=str(tmp_path),
               default_hooks=dict(checkpoint=dict(
                   type='SafeCheckpointHook', interval=1, max_keep_ckpt=1)),
               experiment_name='typo')
    msg = str(info.value)
    assert "'max_keep_ckpt'" in msg and "did you mean 'max_keep_ckpts'" in \
        msg, msg


def test_runtime_configs_save_through_atomic_local_and_others_warn(tmp_path):
    from mmengine.config import Config
    for name in ('default_runtime.py', 'video_runtime.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', name))
        hook = cfg.default_hooks.checkpoint
        assert hook.type == 'SafeCheckpointHook'
        assert hook.backend_args == dict(backend='atomic_local'), name
    runner = Runner(
        model=TinyRegressor(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=Points(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook')),
        experiment_name='in_place')
    runner.train()
    log = open(runner.logger.log_file).read()
    assert 'are written in place' in log
    assert "backend_args=dict(backend='atomic_local')" in log


def _killed_run(work_dir, max_epochs, point, epoch):
    # tests/ on the path: this file, run as a script, imports toy_models
    tests = osp.dirname(osp.dirname(osp.abspath(__file__)))
    env = dict(os.environ, KILL_POINT=point, KILL_EPOCH=str(epoch),
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join(
                   [tests] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    res = subprocess.run(
        [sys.executable, __file__, str(work_dir), str(max_epochs)],
        env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL, (point, res.stderr[-3000:])
    return res.stdout + res.stderr


@pytest.mark.slow
def test_kills_inside_best_saves_keep_a_best_and_resume(tmp_path):
    """One work dir, a chain of real processes each killed inside a best
    save, each resuming the previous one's leftovers."""
    # 1. killed before best_2 is installed (its temporary file is whole):
    #    best_1 stays, whole, and is what the checkpoints record
    _killed_run(tmp_path, 7, 'before_best_install', 2)
    assert files(tmp_path, 'best_') == [best_name(1)]
    assert load(tmp_path / best_name(1))['meta']['epoch'] == 1
    assert pointer(tmp_path) == str(tmp_path / 'epoch_2.pth')

    # 2. resumed at epoch 3 (val 2 is not redone: its candidate is lost),
    #    killed after best_4 is installed, before the regular checkpoint
    #    is saved again to record it: epoch_4.pth still records best_3
    _killed_run(tmp_path, 7, 'after_best', 4)
    assert files(tmp_path, 'best_') == [best_name(3), best_name(4)]
    info = load(tmp_path / 'epoch_4.pth')['message_hub']['runtime_info']
    assert osp.basename(info['best_ckpt']) == best_name(3)

    # 3. resumed: best_4 (0.7) is adopted and best_3 removed, so epoch 5's
    #    0.6 writes no best (it would beat the recorded 0.4); killed after
    #    best_6 and the pointer, before best_4 is removed
    log = _killed_run(tmp_path, 7, 'after_pointer', 6)
    assert f'{tmp_path / best_name(4)} (best 0.7) was saved by the ' \
        'interrupted run' in log, log[-3000:]
    assert files(tmp_path, 'best_') == [best_name(4), best_name(6)]
    assert pointer(tmp_path) == str(tmp_path / 'epoch_6.pth')

    # 4. the last run removes the superseded best_4 and ends with one best
    runner = make_runner(tmp_path, 7, resume=True, name='last')
    runner.train()
    assert files(tmp_path, 'best_') == [best_name(6)]
    assert files(tmp_path, 'epoch_') == ['epoch_7.pth']
    assert runner.message_hub.get_info('best_ckpt') == \
        str(tmp_path / best_name(6))
    assert runner.message_hub.get_info('best_score') == SCORES[6]
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def _arm_kill(point, epoch):
    """SIGKILL this process at ``point`` of the best save of ``epoch``, by
    wrapping ``os.replace`` (what the atomic saves install files with)."""
    name, installed = best_name(epoch), []
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        base = osp.basename(os.fspath(dst))
        if base == name and point == 'before_best_install':
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, **kwargs)
        if base == name:
            installed.append(base)
            if point == 'after_best':
                os.kill(os.getpid(), signal.SIGKILL)
        if base == 'last_checkpoint' and installed and \
                point == 'after_pointer':
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


if __name__ == '__main__':
    _arm_kill(os.environ['KILL_POINT'], int(os.environ['KILL_EPOCH']))
    make_runner(sys.argv[1], int(sys.argv[2]), resume=True,
                log_level='INFO').train()
