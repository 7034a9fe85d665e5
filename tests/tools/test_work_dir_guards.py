"""tools/train.py meets a work dir another (real, running) training holds,
a killed run's lock, and broken resume pointers, with an error at start
that names the holder or the file and what to do (``WorkDirLockHook`` and
``CheckpointLoadHook``, in the runtimes).

A missing ``--resume PATH`` is in tests/engine/test_checkpoint_load_hook.py;
the resume from an empty work dir, more take-overs of killed runs' locks
and the copied work dir are in tests/tools/test_kill_during_save.py.
"""
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

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


def _train(work, data_options, *extra, config=IMAGE_CFG):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=osp.join(REPO, 'tests', 'tools'))
    return subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--work-dir',
         str(work), *extra, *data_options], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=300)


def _contents(folder):
    """Every path under ``folder`` with its bytes (None for folders)."""
    out = {}
    for root, dirs, names in os.walk(folder):
        for d in dirs:
            out[osp.relpath(osp.join(root, d), folder)] = None
        for n in names:
            with open(osp.join(root, n), 'rb') as f:
                out[osp.relpath(osp.join(root, n), folder)] = f.read()
    return out


# The image demo config, paused after its first iteration (CrashHook in
# wait mode, tests/tools/crash_hook.py) while it holds the work dir.
PAUSING_CONFIG = f"""
_base_ = {IMAGE_CFG!r}
custom_imports = dict(imports=['sparseformer_mm', 'crash_hook'],
                      allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='CrashHook')]
"""


def test_two_real_trainings_in_one_work_dir(tmp_path, data_options):
    """Two tools/train.py processes on one work dir: the second stops at
    start naming the first (still running); once the first is killed, a
    third takes its lock over, naming it, and trains."""
    config, work = tmp_path / 'pausing.py', tmp_path / 'work'
    config.write_text(PAUSING_CONFIG)
    pid_file = tmp_path / 'first.pid'
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=osp.join(REPO, 'tests', 'tools'),
               CRASH_AT_ITER='1', CRASH_MODE='wait',
               CRASH_PID_FILE=str(pid_file))
    with open(tmp_path / 'first.log', 'w') as log:
        first = subprocess.Popen(
            [sys.executable, 'tools/train.py', str(config), '--work-dir',
             str(work), *data_options], cwd=REPO, env=env, stdout=log,
            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not pid_file.exists():
            assert first.poll() is None and time.monotonic() < deadline, \
                (tmp_path / 'first.log').read_text()[-3000:]
            time.sleep(0.2)
        assert int(pid_file.read_text()) == first.pid

        # the same config with other settings (issue 23 item 4): mmengine
        # dumps it over the running run's config file and makes its log
        # folder before any hook can look at the lock
        before = _contents(work)
        second = _train(work, data_options + ['train_cfg.max_epochs=7'],
                        config=config)
        assert second.returncode != 0
        err = second.stderr[-3000:]
        assert 'WorkDirLockedError' in err, err
        assert f'{work} is in use by another training run (pid ' \
            f'{first.pid} on host {socket.gethostname()}, started ' in err
        assert f'tools/train.py {config} --work-dir {work}' in err, err
        assert 'Use another --work-dir, or wait for that run to end' in err
        assert first.poll() is None  # the first run goes on undisturbed
        # the second left the work dir as it found it (the running run's
        # log grows meanwhile: compare all but that)
        after = _contents(work)
        log = [k for k in before if k.endswith('.log')]
        assert {k: v for k, v in after.items() if k not in log} == \
            {k: v for k, v in before.items() if k not in log}
        assert 'max_epochs=7' not in (work / 'pausing.py').read_text()
    finally:
        first.kill()
        first.wait()

    third = _train(work, data_options + ['train_cfg.max_epochs=1'],
                   '--no-validate')
    log = third.stdout + third.stderr
    assert third.returncode == 0, log[-3000:]
    assert f'Took over the lock of {work} from a run that is no longer ' \
        f'running (pid {first.pid} on host {socket.gethostname()}' in log
    assert (work / 'epoch_1.pth').is_file()


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
