"""A SIGKILL at any point of a checkpoint save (max_keep_ckpts=1) leaves a
checkpoint and a pointer that ``tools/train.py --resume`` continues from,
through the runtime's ``SafeCheckpointHook`` and ``WorkDirLockHook``.

One work dir, one chain of real runs: each run resumes the previous killed
one (so each kill's leftovers are resumed from, and the killed run's work
dir lock is taken over) and is killed at the next point of a save. At
the end a copy of the work dir resumes from its own files.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from data_helpers import make_shape_dataset

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TIMEOUT = 300

# 4 training images, batch 4: 1 iteration per epoch; no validation.
CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['sparseformer_mm', 'crash_hook'],
                      allow_failed_imports=False)
train_dataloader = dict(batch_size=4, num_workers=0,
                        dataset=dict(data_root={root!r}))
val_dataloader = dict(batch_size=4, num_workers=0,
                      dataset=dict(data_root={root!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs}, val_interval=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
custom_hooks = _base_.custom_hooks + [dict(type='CrashHook')]
'''


def _train(config, work, point=None, epoch=None, extra=()):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=osp.join(REPO, 'tests', 'tools'))
    if point:
        env.update(CRASH_IN_SAVE=point, CRASH_SAVE_EPOCH=str(epoch))
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir',
           str(work), '--no-validate', '--resume', *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _state(work):
    """(checkpoint names, the pointer's file name) after a kill; the
    pointer must name an existing, loadable checkpoint."""
    names = sorted(n for n in os.listdir(work) if n.endswith('.pth'))
    pointer = (work / 'last_checkpoint').read_text().strip()
    assert osp.isfile(pointer), (pointer, names)
    ckpt = torch.load(pointer, map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == int(osp.basename(pointer)[6:-4])
    return names, osp.basename(pointer)


def test_kill_at_every_point_of_a_save_then_resume(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=1, num_val=1, size=32)
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG.format(
        base=osp.join(REPO, 'configs/demo',
                      'sparseformer-nano_1xb32-6e_shapes.py'),
        root=root, epochs=4))
    work = tmp_path / 'work'

    # (point, epoch whose save is hit, checkpoints left, pointer's file,
    #  the epoch the next run resumes from)
    chain = [
        # the new checkpoint is whole in its temporary file, not installed
        # (a kill earlier in the save leaves the same files)
        ('before_ckpt_install', 2, ['epoch_1.pth'], 'epoch_1.pth', 1),
        ('after_ckpt', 2, ['epoch_1.pth', 'epoch_2.pth'], 'epoch_1.pth', 1),
        ('after_pointer', 2, ['epoch_1.pth', 'epoch_2.pth'], 'epoch_2.pth', 2),
        ('after_remove', 3, ['epoch_3.pth'], 'epoch_3.pth', 3),
    ]
    resumed_from = None
    for i, (point, epoch, names, pointer, next_epoch) in enumerate(chain):
        res = _train(config, work, point, epoch)
        log = res.stdout + res.stderr
        assert res.returncode == -9, (point, log[-3000:])
        if i == 0:  # --resume in an empty work dir says what it does
            assert 'has no last_checkpoint file: training starts from ' \
                'scratch' in log, log[-3000:]
        if resumed_from is not None:
            assert f'resumed epoch: {resumed_from},' in log, (point, log)
            # the killed run's lock was free and taken over, naming it
            assert 'Took over the lock of' in log, (point, log[-3000:])
        assert _state(work) == (names, pointer), point
        resumed_from = next_epoch

    done = _train(config, work)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert 'resumed epoch: 3,' in log
    # the end: one checkpoint, no leftovers of the killed saves
    assert _state(work) == (['epoch_4.pth'], 'epoch_4.pth')
    assert not [n for n in os.listdir(work) if n.endswith('.tmp')]

    # A copy of the work dir resumes from its own files, not from the
    # absolute paths of the original that its pointer holds.
    copy = tmp_path / 'copy'
    shutil.copytree(work, copy)
    res = _train(config, copy, extra=['--cfg-options',
                                      'train_cfg.max_epochs=5'])
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert f'resuming from {copy / "epoch_4.pth"}' in log, log[-3000:]
    assert 'resumed epoch: 4,' in log
    assert _state(copy) == (['epoch_5.pth'], 'epoch_5.pth')
    assert _state(work) == (['epoch_4.pth'], 'epoch_4.pth')  # untouched
