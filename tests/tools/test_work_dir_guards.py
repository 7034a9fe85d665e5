"""tools/train.py meets a work dir another run holds, and broken resume
pointers, with an error at start that names the file and what to do
(``WorkDirLockHook`` and ``ResumeCheckHook``, in the runtimes).

A missing ``--resume PATH`` is in tests/engine/test_resume_check_hook.py;
the resume from an empty work dir, the take-over of a killed run's lock
and the copied work dir are in tests/tools/test_kill_during_save.py.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from sparseformer_mm.engine.hooks import WorkDirLock

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')


@pytest.fixture(scope='module')
def data_options(tmp_path_factory):
    from data_helpers import make_shape_dataset
    root = str(tmp_path_factory.mktemp('shapes'))
    make_shape_dataset(root, num_train=1, num_val=1, size=32)
    return ['--cfg-options'] + [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')]


def _train(work, data_options, *extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run(
        [sys.executable, 'tools/train.py', IMAGE_CFG, '--work-dir',
         str(work), *extra, *data_options], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300)


def test_second_run_in_a_work_dir_fails_naming_the_first(tmp_path,
                                                         data_options):
    # The first "run" holds the lock as a training would (this process).
    lock = WorkDirLock(str(tmp_path))
    assert lock.acquire() is None
    try:
        res = _train(tmp_path, data_options)
    finally:
        lock.release()
    assert res.returncode != 0
    assert 'WorkDirLockedError' in res.stderr, res.stderr[-3000:]
    assert 'is in use by another training run' in res.stderr
    assert f'pid {os.getpid()} on host {socket.gethostname()}' in res.stderr
    assert 'Use another --work-dir' in res.stderr
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.pth')]


@pytest.mark.parametrize('case', ['empty', 'deleted'])
def test_broken_resume_target_is_named(tmp_path, data_options, case):
    # A checkpoint that exists (never loaded: the check comes first) and a
    # pointer that is empty or names a deleted file.
    (tmp_path / 'epoch_2.pth').write_bytes(b'')
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text('' if case == 'empty' else
                       str(tmp_path / 'epoch_4.pth'))
    res = _train(tmp_path, data_options, '--resume')
    assert res.returncode != 0
    err = res.stderr[-3000:]
    assert 'FileNotFoundError: Cannot resume' in err, err
    newest = str(tmp_path / 'epoch_2.pth')
    if case == 'empty':
        assert f'the pointer {pointer} is empty' in err, err
        assert f'--resume {newest}' in err
    else:
        assert f'{pointer} names {tmp_path / "epoch_4.pth"}, which does ' \
            'not exist' in err, err
        assert f'--resume {newest}' in err
