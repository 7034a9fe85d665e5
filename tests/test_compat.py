"""Each upstream fix: the failure without it and the fix with it.

Fixes are applied on ``import sparseformer_mm``; the "without" cases run in
a fresh interpreter that does not import it.
"""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from sparseformer_mm import compat

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
    loaded = compat.load_from_local(str(path), 'cpu')
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
    with compat.trusted_checkpoint_dir(str(tmp_path)):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert marker.exists()
    # and the trust ends with the context
    marker.unlink()
    with pytest.raises(RuntimeError):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert not marker.exists()
