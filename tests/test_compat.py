"""Each upstream fix: the failure without it and the fix with it.

Fixes are applied on ``import sparseformer_mm``; the "without" cases run in
a fresh interpreter that does not import it.
"""
import contextlib
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from sparseformer_mm import checkpoint_safety, compat

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_py(code, cwd=REPO):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=cwd)


def test_mmaction_models_import_needs_drn_fix():
    without = run_py('import mmaction.models')
    assert without.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in without.stderr
    with_fix = run_py('''
        import sparseformer_mm, mmaction.models
        from mmaction.registry import MODELS
        assert MODELS.get('Recognizer3D') is not None
        print('ok')''')
    assert with_fix.returncode == 0, with_fix.stderr
    assert 'ok' in with_fix.stdout


MMACTION_BASE = '''
    import sys, tempfile, os
    sys.modules['pkg_resources'] = None   # setuptools >= 82: no pkg_resources
    {fix}
    from mmengine.config import Config
    d = tempfile.mkdtemp()
    with open(os.path.join(d, 'cfg.py'), 'w') as f:
        f.write("_base_ = ['mmaction::_base_/default_runtime.py']\\n")
    cfg = Config.fromfile(os.path.join(d, 'cfg.py'))
    print('scope', cfg.default_scope)
'''


def test_mmaction_config_base_without_pkg_resources():
    without = run_py(MMACTION_BASE.format(fix=''))
    assert without.returncode != 0
    assert 'pkg_resources' in without.stderr
    with_fix = run_py(MMACTION_BASE.format(fix='import sparseformer_mm'))
    assert with_fix.returncode == 0, with_fix.stderr
    assert 'scope mmaction' in with_fix.stdout


def test_installed_path_lookups():
    import mmaction
    assert compat.is_installed('mmaction2')
    assert not compat.is_installed('surely_not_a_package_xyz')
    assert compat.get_installed_path('mmaction2') == osp.dirname(
        mmaction.__file__)


def _runner_style_checkpoint(path):
    """What mmengine's Runner saves: tensors plus HistoryBuffer/numpy."""
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 3)
    torch.save({'meta': {'epoch': 1, 'seed': np.int64(3),
                         'hist': np.arange(3.0)},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': hub.state_dict()}, path)


def test_plain_torch_load_fails_on_runner_checkpoints(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    _runner_style_checkpoint(path)
    from mmengine.runner import checkpoint as ckpt_mod
    # mmengine's own loader (kept untouched in its module) fails on torch>=2.6
    with pytest.raises(Exception, match='weights_only|Weights only'):
        ckpt_mod.load_from_local(str(path), 'cpu')
    # ours loads it weights-only, because these types are inert data
    loaded = checkpoint_safety.load_from_local(str(path), 'cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_code_in_foreign_checkpoint_never_runs(tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    path = tmp_path / 'downloaded.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': Payload()}, path)
    from mmengine.runner.checkpoint import CheckpointLoader
    with pytest.raises(RuntimeError, match='Refused to unpickle'):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert not marker.exists()
    # inside the running work_dir (resume) the full state is trusted
    with checkpoint_safety.trusted_checkpoint_dir(str(tmp_path)):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert marker.exists()
    # and the trust ends with the context
    marker.unlink()
    with pytest.raises(RuntimeError):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert not marker.exists()


# --------------------------------------------------------------------------
# 4. Atomic checkpoint writes
# --------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'w': torch.ones(3)}, path)

    def fail(f):
        f.write(b'half a checkpoint')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        checkpoint_safety.atomic_write(str(path), fail)
    assert torch.equal(torch.load(path)['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


def test_mmengine_checkpoint_writers_are_atomic(tmp_path):
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod
    from mmengine.runner import save_checkpoint
    # every name the Runner and CheckpointHook reach it by
    assert save_checkpoint is ckpt_mod.save_checkpoint
    assert runner_mod.save_checkpoint is save_checkpoint
    assert save_checkpoint.__wrapped__ is not save_checkpoint

    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(2)}}, str(path))
    with pytest.raises(Exception):  # a lambda cannot be pickled
        save_checkpoint({'state_dict': {'w': torch.zeros(2)},
                         'bad': lambda: None}, str(path))
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.ones(2))

    # CheckpointHook writes the pointer with ``open(path, 'w')``.
    pointer = tmp_path / 'last_checkpoint'
    with checkpoint_hook.open(str(pointer), 'w') as f:
        f.write(str(path))
    with pytest.raises(RuntimeError):
        with checkpoint_hook.open(str(pointer), 'w') as f:
            f.write('/somewhere/else.pth')
            raise RuntimeError('killed')
    assert pointer.read_text() == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_1.pth', 'last_checkpoint']


SAVE_FOREVER = '''
    import os, sys, torch
    import sparseformer_mm
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import save_checkpoint
    d = sys.argv[1]
    big = torch.randn(32 * 2**20 // 4)  # 32 MB
    for i in range(1000):
        path = os.path.join(d, f'epoch_{i}.pth')
        save_checkpoint({'meta': {'epoch': i}, 'state_dict': {'w': big}},
                        path)
        with checkpoint_hook.open(os.path.join(d, 'last_checkpoint'),
                                  'w') as f:
            f.write(path)
        if i >= 2:
            os.remove(os.path.join(d, f'epoch_{i - 2}.pth'))
'''


def test_sigkill_while_saving_leaves_whole_checkpoints(tmp_path):
    import signal
    import time
    proc = subprocess.Popen(
        [sys.executable, '-c', textwrap.dedent(SAVE_FOREVER), str(tmp_path)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill as soon as a checkpoint after the first is being written
        # (any of them: on a fast disk the poll may miss epoch 1's window).
        deadline = time.time() + 120

        def writing():
            # temporary names are .epoch_N.pth.HOST.PID.RAND.tmp
            for p in tmp_path.glob('.epoch_*.pth.*tmp'):
                with contextlib.suppress(OSError):  # renamed meanwhile
                    if not p.name.startswith('.epoch_0.pth.') \
                            and p.stat().st_size:
                        return True
            return False

        while not writing():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, 'no checkpoint write started'
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The kill may land in the write, the fsync or just after the rename;
    # whatever it hit, every checkpoint file is whole and the pointer names
    # one of them.
    pointer = (tmp_path / 'last_checkpoint').read_text()
    final = sorted(tmp_path.glob('epoch_*.pth'))
    assert final, sorted(p.name for p in tmp_path.iterdir())
    assert pointer in map(str, final)
    for path in final:
        ckpt = torch.load(path, weights_only=True)
        assert ckpt['state_dict']['w'].numel() == 32 * 2**20 // 4
