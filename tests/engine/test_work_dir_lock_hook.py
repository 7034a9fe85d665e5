"""WorkDirLockHook in real Runner runs: what takes the lock and what does
not, its release, a file system without flock, and the decision of rank 0
reaching the other ranks. Two real tools/train.py processes on one work dir
are in tests/tools/test_work_dir_guards.py."""
import errno
import fcntl
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.evaluator import BaseMetric
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner

from sparseformer_mm.engine.hooks import WorkDirLockHook
from sparseformer_mm.engine.hooks import work_dir_lock_hook as lock_module
from sparseformer_mm.engine.hooks.work_dir_lock_hook import (
    LOCK_NAME, WorkDirLockedError)
from toy_models import Points, TinyRegressor


MODELS.register_module('TinyRegressor', module=TinyRegressor, force=True)
DATASETS.register_module('PointsForLock', module=Points, force=True)


@METRICS.register_module(force=True)
class CountSamples(BaseMetric):
    default_prefix = ''

    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(samples=sum(results))


def _runner(work_dir, name, **kwargs):
    loader = dict(dataset=Points(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=loader, val_dataloader=loader,
        test_dataloader=loader, val_evaluator=dict(type='CountSamples'),
        test_evaluator=dict(type='CountSamples'), val_cfg=dict(),
        test_cfg=dict(), train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='WorkDirLockHook')], log_level='WARNING',
        experiment_name=name, **kwargs)


def _free(work_dir) -> bool:
    """Whether nobody holds the lock (a flock on a separate open file
    conflicts with any holder, this process included)."""
    fd = os.open(os.path.join(work_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def held_by_another_process(tmp_path):
    """The work dir's lock held by a child process (no holder details in
    the file, as with a run of an older version)."""
    code = ('import fcntl, os, sys, time\n'
            f'fd = os.open({str(tmp_path / LOCK_NAME)!r}, '
            'os.O_RDWR | os.O_CREAT)\n'
            'fcntl.flock(fd, fcntl.LOCK_EX)\n'
            'print("locked", flush=True)\n'
            'time.sleep(120)\n')
    holder = subprocess.Popen([sys.executable, '-c', code],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        yield tmp_path
    finally:
        holder.kill()
        holder.wait()


def test_test_and_val_run_while_a_training_holds_the_work_dir(
        held_by_another_process):
    work = held_by_another_process
    assert _runner(work, 'test').test() == dict(samples=4)
    assert _runner(work, 'val').val() == dict(samples=4)
    with pytest.raises(WorkDirLockedError, match='is in use by another '
                       r'training run \(holder unknown\)'):
        _runner(work, 'train').train()


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    seen = []

    class Probe(WorkDirLockHook):  # any hook: looks at the lock mid-run
        priority = 'NORMAL'

        def before_run(self, runner):
            pass

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            seen.append(_free(tmp_path))

    runner = _runner(tmp_path, 'held')
    runner.register_hook(Probe())
    runner.train()
    assert seen == [False, False]  # both iterations ran under the lock
    assert _free(tmp_path)


def test_without_flock_support_the_run_warns_and_goes_on(tmp_path,
                                                         monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, 'No locks available')

    monkeypatch.setattr(lock_module.fcntl, 'flock', no_flock)
    runner = _runner(tmp_path, 'nolock')
    runner.train()
    assert runner.iter == 2
    with open(os.path.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    assert f'Could not lock {tmp_path / LOCK_NAME} ([Errno {errno.ENOLCK}]' \
        in log
    assert 'nothing stops a second training run in this work dir' in log


def test_every_rank_stops_when_rank_0_cannot_lock(tmp_path, monkeypatch):
    """Rank 1 of 2 does not lock; it raises the error rank 0 broadcasts
    (here: rank 0's message, as broadcast_object_list delivers it)."""
    message = f'{tmp_path} is in use by another training run (pid 7 ...)'

    def broadcast(box, src=0):
        assert box == [None]  # rank 1 sends nothing of its own
        box[0] = message

    monkeypatch.setattr(lock_module, 'get_rank', lambda: 1)
    monkeypatch.setattr(lock_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(lock_module, 'broadcast_object_list', broadcast)
    runner = _runner(tmp_path, 'rank1')
    with pytest.raises(WorkDirLockedError, match=f'^{re.escape(message)}$'):
        runner.train()
    assert runner.iter == 0
    assert not (tmp_path / LOCK_NAME).exists()  # only rank 0 locks


def test_a_symlinked_lock_is_never_followed(tmp_path):
    """Issue 23 item 4: ``train.lock`` pointing outside the work dir: the
    run stops naming it, and the file it points to is untouched."""
    work, outside = tmp_path / 'work', tmp_path / 'precious.txt'
    work.mkdir()
    outside.write_text('keep me')
    os.symlink(outside, work / LOCK_NAME)
    runner = _runner(work, 'symlink')
    with pytest.raises(WorkDirLockedError, match='is a symbolic link'):
        runner.train()
    assert runner.iter == 0
    assert outside.read_text() == 'keep me'


def test_a_directory_named_train_lock_stops_the_run(tmp_path):
    (tmp_path / LOCK_NAME).mkdir()
    runner = _runner(tmp_path, 'lockdir')
    with pytest.raises(WorkDirLockedError, match='is a directory'):
        runner.train()
    assert runner.iter == 0


HOLD = '''
import sys, time
from sparseformer_mm.engine.hooks.work_dir_lock_hook import (
    WorkDirLock, _config_files)
work = sys.argv[1]
lock = WorkDirLock(work)
lock.acquire(log_dir=work + '/20260101_000000',
             config_files=_config_files(work))
print('locked', flush=True)
time.sleep(120)
'''


@pytest.mark.slow
def test_refused_from_cfg_run_puts_back_what_it_wrote(tmp_path):
    """Runner.from_cfg, refused: mmengine dumped its config over the
    holder's (same name) and made a log folder before the lock was
    checked; both are undone. A config of another name is removed."""
    from mmengine.config import Config
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'cfg.py').write_text('# the running run\nmax_epochs = 3\n')
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(work)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        before = sorted(os.listdir(work))
        for name in ('cfg.py', 'other.py'):
            path = tmp_path / name
            path.write_text(CFG.format(work=str(work)))
            runner = Runner.from_cfg(Config.fromfile(str(path)))
            assert osp.isdir(runner.log_dir)
            assert 'max_epochs=7' in (work / name).read_text()  # dumped
            with pytest.raises(WorkDirLockedError, match='in use'):
                runner.train()
            assert sorted(os.listdir(work)) == before, name
            assert (work / 'cfg.py').read_text() == \
                '# the running run\nmax_epochs = 3\n'
    finally:
        holder.kill()
        holder.wait()


CFG = '''
work_dir = {work!r}
model = dict(type='TinyRegressor')
train_dataloader = dict(
    dataset=dict(type='PointsForLock'), batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
train_cfg = dict(by_epoch=True, max_epochs=7)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
custom_hooks = [dict(type='WorkDirLockHook')]
log_level = 'WARNING'
'''
