"""tools/dist_train.sh when a rank dies or hangs (2 CPU ranks, gloo):
the job ends, non-zero, naming the failed rank; with MAX_RESTARTS torchrun
restarts it and training resumes from the last checkpoint."""
import os.path as osp
import re

import pytest
import torch
from test_dist_train import CONFIG, REPO, _env, _run

from data_helpers import make_shape_dataset
from sparseformer_mm.checkpoint_safety import load_weights_only

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

# 16 images over 2 ranks, batch 4: 2 iterations per epoch.
TEST_CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['sparseformer_mm', 'crash_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='CheckpointLoadHook'),
                {hooks}]
optim_wrapper = dict(non_finite_loss={non_finite!r})
train_cfg = dict(max_epochs=2, val_interval=10)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
'''


def _job(tmp_path, hooks="dict(type='CrashHook')", non_finite='raise'):
    """``(command, env)`` of a 2-epoch, 2-rank training job."""
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=4, num_val=1, size=32)
    config = tmp_path / 'cfg.py'
    config.write_text(TEST_CONFIG.format(base=osp.join(REPO, CONFIG),
                                         hooks=hooks, non_finite=non_finite))
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.batch_size=4',
                 f'{split}_dataloader.num_workers=0']
    cmd = ['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir',
           str(tmp_path / 'work'), '--cfg-options'] + opts
    env = _env()
    env['PYTHONPATH'] = osp.join(REPO, 'tests', 'tools')
    return cmd, env


@pytest.fixture
def job(tmp_path):
    return _job(tmp_path)


def _failures(err):
    """torchrun's error summary as {rank: exitcode}."""
    return {int(r): int(c) for r, c in re.findall(
        r'rank\s*: (\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*: (-?\d+)',
        err)}


def test_killed_rank_ends_the_job_and_is_named(job, tmp_path):
    cmd, env = job
    env.update(CRASH_AT_ITER='2', CRASH_RANK='1')  # SIGKILL in epoch 1
    code, out, err = _run(cmd, env, tmp_path)  # fails on its timeout
    assert code != 0, out[-3000:]
    failures = _failures(err)
    assert failures.get(1) == -9, err[-3000:]  # rank 1, SIGKILL
    assert 'Signal 9 (SIGKILL) received' in err


def test_hung_rank_times_out_instead_of_blocking_forever(job, tmp_path):
    cmd, env = job
    # Rank 1 stops (alive, silent); rank 0 waits in the next gradient
    # all-reduce for DIST_TIMEOUT seconds, fails, and torchrun stops both.
    env.update(CRASH_AT_ITER='2', CRASH_RANK='1', CRASH_MODE='wait',
               CRASH_PID_FILE=str(tmp_path / 'rank1.pid'),
               DIST_TIMEOUT='5')
    code, out, err = _run(cmd, env, tmp_path)
    assert code != 0, out[-3000:]
    failures = _failures(err)
    assert failures.get(0) == 1, err[-3000:]  # rank 0 raised
    assert re.search(r'[Tt]imed? ?out', err), err[-3000:]


def test_elastic_restart_resumes_from_the_last_checkpoint(job, tmp_path):
    cmd, env = job
    # Rank 1 dies in epoch 2 of the first attempt only; torchrun restarts
    # both ranks, which resume from epoch_1.pth and finish.
    env.update(CRASH_AT_ITER='3', CRASH_RANK='1', MAX_RESTARTS='1')
    code, out, err = _run(cmd, env, tmp_path)
    assert code == 0, out[-3000:] + err[-3000:]
    assert 'Auto resumed from the latest checkpoint' in out, out[-3000:]
    assert 'resumed epoch: 1, iter: 2' in out, out[-3000:]
    assert (tmp_path / 'work' / 'epoch_2.pth').exists()


NAN_HOOK = "dict(type='NaNLossHook')"


def test_nan_loss_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    # Rank 1's loss is NaN at iteration 2. If rank 0 went on to backward
    # alone it would wait in the gradient all-reduce (DIST_TIMEOUT); both
    # must skip, then train on, with the weights finite.
    cmd, env = _job(tmp_path, NAN_HOOK, non_finite='skip')
    env.update(NAN_AT_ITER='2', NAN_RANK='1', DIST_TIMEOUT='20')
    code, out, err = _run(cmd, env, tmp_path)
    assert code == 0, out[-3000:] + err[-3000:]
    # rank 0's log names the rank whose loss was NaN
    assert re.search(r'loss is non-finite on rank\(s\) 1 \(rank 0: '
                     r'[0-9.]+\) at iteration 2: step skipped', out), \
        out[-3000:]
    assert out.count('step skipped') == 1  # only that iteration
    assert 'Epoch(train) [2][2/2]' in out  # trained on to the end
    # epoch 1 ended with the skipped step: its checkpoint was held back
    assert 'epoch_1.pth not saved: the last 1 step(s) were skipped' in out
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()
    state = load_weights_only(str(tmp_path / 'work' / 'epoch_2.pth'))
    weights = state['state_dict']
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_nan_loss_on_one_rank_stops_every_rank_naming_it(tmp_path):
    cmd, env = _job(tmp_path, NAN_HOOK, non_finite='raise')
    env.update(NAN_AT_ITER='2', NAN_RANK='1', DIST_TIMEOUT='20')
    code, out, err = _run(cmd, env, tmp_path)
    assert code != 0
    # the job ends (torchrun stops the other rank) with the error naming the
    # rank and the iteration, before the epoch's checkpoint
    assert 'NonFiniteLossError: loss is nan on rank 1 (non-finite on ' \
        'rank(s) 1) at iteration 2' in err, err[-3000:]
    assert not re.search(r'[Tt]imed? ?out', err), err[-3000:]
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()
