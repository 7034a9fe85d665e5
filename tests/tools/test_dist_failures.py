"""tools/dist_train.sh when a rank dies or hangs (2 CPU ranks, gloo):
the job ends, non-zero, naming the failed rank; with MAX_RESTARTS torchrun
restarts it and training resumes from the last checkpoint."""
import os.path as osp
import re

import pytest
from test_dist_train import CONFIG, REPO, _env, _run

from sparseformer_mm.datasets import make_shape_dataset

# 16 images over 2 ranks, batch 4: 2 iterations per epoch.
TEST_CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['sparseformer_mm', 'crash_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='SamplingGradScaleHook'), dict(type='CrashHook')]
train_cfg = dict(max_epochs=2, val_interval=10)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
'''


@pytest.fixture
def job(tmp_path):
    """``(command, env)`` of a 2-epoch, 2-rank training job."""
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=4, num_val=1, size=32)
    config = tmp_path / 'cfg.py'
    config.write_text(TEST_CONFIG.format(base=osp.join(REPO, CONFIG)))
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
