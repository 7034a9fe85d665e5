"""Every entry point trains the video demo config alike on a CPU.

Our ``tools/train.py``, mmaction2's own ``tools/train.py`` (from its wheel),
``mim train mmaction`` (where openmim runs) and a plain
``Runner.from_cfg(cfg).train()`` each train the real demo config on
generated clips from an image checkpoint, in fp32 (the config asks for AMP,
there is no GPU), then resume after that checkpoint was deleted. The final
weights are identical across entry points: what makes training work is in
the config and its registered components, not in our command line.
"""
import importlib.util
import os
import os.path as osp
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import mmaction
import pytest
import torch

from data_helpers import make_motion_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'
IMAGE_CONFIG = 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'
MMACTION_TRAIN = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools',
                          'train.py')
TIMEOUT = 300  # a safety net; a stage takes ~10 s on 2 loaded cores
FP32 = 'trains in fp32 instead of AMP'

# Runner.from_cfg(cfg).train() in a user's script
RUNNER_SCRIPT = osp.join(REPO, 'tests', 'runner_script.py')


def _mim_runs() -> bool:
    """openmim 0.3.9 imports pkg_resources, gone from setuptools >= 82."""
    if importlib.util.find_spec('mim') is None:
        return False
    return subprocess.run([sys.executable, '-m', 'mim', '--version'],
                          capture_output=True).returncode == 0


def _entry_points():
    points = {
        'ours': [sys.executable, 'tools/train.py'],
        'mmaction2': [sys.executable, MMACTION_TRAIN],
        'runner': [sys.executable, RUNNER_SCRIPT],
    }
    if _mim_runs():
        points['mim'] = [sys.executable, '-m', 'mim', 'train', 'mmaction']
    return points


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """4 clips of 8 frames (32x32) per split and an image checkpoint of the
    demo's arch; returns ``(root, image checkpoint bytes)``."""
    root = str(tmp_path_factory.mktemp('motion'))
    make_motion_dataset(root, num_train=1, num_val=1, size=32, num_frames=8)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(
            osp.join(REPO, IMAGE_CONFIG)).model)
    path = osp.join(root, 'image.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return root


def _options(root, pretrained, max_epochs):
    opts = [f'model.backbone.pretrained={pretrained}',
            f'train_cfg.max_epochs={max_epochs}',
            'train_cfg.val_begin=100',  # no validation: speed
            'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        sub = 'train' if split == 'train' else 'val'
        opts += [
            f'{split}_dataloader.dataset.ann_file='
            f'{root}/kinetics400_{sub}_list_videos.txt',
            f'{split}_dataloader.dataset.data_prefix.video='
            f'{root}/videos_{sub}',
            f'{split}_dataloader.batch_size=2',  # 2 iterations per epoch
            f'{split}_dataloader.num_workers=0',
        ]
    return opts


def _stage(cmd, work, opts, resume):
    args = cmd + [CONFIG, '--work-dir', str(work)]
    args += ['--resume'] if resume else []
    args += ['--cfg-options'] + opts
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    res = subprocess.run(args, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=TIMEOUT)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f'{shlex.join(args)}\n{out[-4000:]}'
    return out


def _chain(name, cmd, data, tmp_path):
    """Train 1 epoch from the image checkpoint, delete it, resume to 2."""
    pretrained = tmp_path / f'image_{name}.pth'
    pretrained.write_bytes(open(osp.join(data, 'image.pth'), 'rb').read())
    work = tmp_path / name
    first = _stage(cmd, work, _options(data, pretrained, 1), resume=False)
    pretrained.unlink()
    second = _stage(cmd, work, _options(data, pretrained, 2), resume=True)
    return first, second, work / 'epoch_2.pth'


@pytest.mark.slow
def test_entry_points_train_and_resume_alike(data, tmp_path):
    points = _entry_points()
    with ThreadPoolExecutor(2) as pool:  # CI has 2 cores
        runs = dict(zip(points, pool.map(
            lambda item: _chain(*item, data, tmp_path), points.items())))

    weights = {}
    for name, (first, second, ckpt) in runs.items():
        # the config's AmpOrFp32OptimWrapper: fp32 here, said in the log
        assert FP32 in first and FP32 in second, (name, first[-3000:])
        assert f'loaded inflated image weights from {tmp_path}' in first, \
            (name, first[-3000:])
        # resumed with its image checkpoint deleted: not read, and said so
        assert 'resumed epoch: 1, iter: 2' in second, (name, second[-3000:])
        assert 'skipped the pretrained initialisation' in second, name
        assert 'loaded inflated image weights' not in second, name
        weights[name] = torch.load(ckpt, map_location='cpu',
                                   weights_only=False)['state_dict']

    ours = weights.pop('ours')
    for name, other in weights.items():
        assert other.keys() == ours.keys(), name
        for key in ours:
            assert torch.equal(other[key], ours[key]), (name, key)


def test_mim_train_is_among_them_where_openmim_runs():
    """``mim train`` runs mmaction2's tools/train.py (checked above), but
    openmim 0.3.9 imports pkg_resources, which setuptools >= 82 lacks; and
    ``pip install openmim`` pulls opendatalab -> openxlab, which pins
    setuptools 60.2. So it is not in requirements/tests.txt."""
    if not _mim_runs():
        pytest.skip('openmim is not installed or cannot import '
                    'pkg_resources (setuptools >= 82)')


def test_python_without_the_stack_gets_the_command_to_run():
    # -S: no site-packages, as a shell whose python lacks torch
    args = ['tools/train.py', CONFIG, '--seed', '1']
    res = subprocess.run([sys.executable, '-S'] + args, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert 'Traceback' not in res.stderr, res.stderr
    assert 'cannot import torch' in res.stderr, res.stderr
    venv = osp.join(REPO, '.venv', 'bin', 'python')
    if osp.isfile(venv):  # the Makefile's environment
        assert f'.venv/bin/python {shlex.join(args)}' in res.stderr
        assert 'source .venv/bin/activate' in res.stderr
    else:
        assert 'make install' in res.stderr


def test_launchers_pick_a_python_with_the_stack():
    """What dist_launch.sh / slurm_launch.sh run to choose their Python."""
    res = subprocess.run([sys.executable, 'tools/find_python.py'], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == sys.executable
    res = subprocess.run([sys.executable, '-S', 'tools/find_python.py'],
                         cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    venv = osp.join(REPO, '.venv', 'bin', 'python')
    if osp.isfile(venv):
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == venv
        assert 'cannot import torch' in res.stderr  # a note on stderr
    else:
        assert res.returncode == 1 and 'make install' in res.stderr
