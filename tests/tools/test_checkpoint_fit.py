"""A checkpoint that does not fit the config is an error saying what to set:
tools/test.py, tools/infer.py, the inference API and load_from in training
(issue 17, case 3). An explicit option keeps partial loading."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

from data_helpers import make_motion_clip, write_video
from sparseformer_mm.checkpoint_fit import CheckpointMismatchError
from sparseformer_mm.visualization import init_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VIDEO_CFG = osp.join(
    REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
INFLATE = 'inflate_to_video.py'
SET_R2 = 'Set model.backbone.replicates=2'


def _save(cfg_path, scope, path, **backbone):
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.update(backbone)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict()}, path)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('fit')
    _save(IMAGE_CFG, 'mmpretrain', d / 'image.pth')
    _save(VIDEO_CFG, 'mmaction', d / 'video_r2.pth')
    _save(VIDEO_CFG, 'mmaction', d / 'video_r4.pth', replicates=4)
    frames, _, _ = make_motion_clip(__import__('numpy').random.default_rng(0),
                                    'move_up', 32, 32)
    write_video(str(d / 'clip.mp4'), frames)
    (d / 'list.txt').write_text('clip.mp4 3\n')
    return d


def _test_py(files, ckpt, *opts, extra=()):
    data = [f'test_dataloader.dataset.ann_file={files / "list.txt"}',
            f'test_dataloader.dataset.data_prefix.video={files}',
            'test_dataloader.num_workers=0']
    return subprocess.run(
        [sys.executable, 'tools/test.py', VIDEO_CFG, str(files / ckpt),
         '--work-dir', str(files / 'work'), *extra, '--cfg-options', *data,
         *opts], cwd=REPO, capture_output=True, text=True, timeout=300)


def _error_line(res):
    assert res.returncode != 0, res.stdout[-1500:] + res.stderr[-1500:]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith('error:')]
    assert lines, res.stderr[-2000:]
    return lines[-1]


@pytest.mark.slow
@pytest.mark.parametrize('ckpt,opts,fix', [
    ('image.pth', (), INFLATE),
    ('video_r2.pth', ('model.backbone.replicates=4', ), SET_R2),
])
def test_test_py_refuses(files, ckpt, opts, fix):
    line = _error_line(_test_py(files, ckpt, *opts))
    assert fix in line and '--partial-load' in line


@pytest.mark.slow
@pytest.mark.parametrize('ckpt,fix', [('image.pth', INFLATE),
                                      ('video_r4.pth', SET_R2.replace(
                                          '=2', '=4'))])
def test_infer_py_refuses(files, ckpt, fix):
    res = subprocess.run(
        [sys.executable, 'tools/infer.py', VIDEO_CFG, str(files / ckpt),
         str(files / 'clip.mp4')], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    line = _error_line(res)
    assert fix in line and '--partial-load' in line


def test_api_refuses_and_partial_warns(files):
    with pytest.raises(CheckpointMismatchError, match=INFLATE):
        init_model(VIDEO_CFG, str(files / 'image.pth'))
    with pytest.raises(CheckpointMismatchError, match='replicates=4'):
        init_model(VIDEO_CFG, str(files / 'video_r4.pth'))
    with pytest.raises(CheckpointMismatchError, match='VideoSparseFormer '
                       'checkpoint'):
        init_model(IMAGE_CFG, str(files / 'video_r2.pth'))
    with pytest.raises(CheckpointMismatchError, match='not a checkpoint'):
        init_model(VIDEO_CFG, str(files / 'list.txt'))
    with pytest.warns(UserWarning, match='replicates=4'):
        model = init_model(VIDEO_CFG, str(files / 'video_r4.pth'),
                           partial=True)
    ref = torch.load(files / 'video_r4.pth')['state_dict']
    assert torch.equal(model.cls_head.fc_cls.weight,
                       ref['cls_head.fc_cls.weight'])  # what fits loaded
    init_model(VIDEO_CFG, str(files / 'video_r2.pth'))  # fits: no error


def test_load_from_in_training(files, tmp_path):
    cfg = Config.fromfile(VIDEO_CFG)
    cfg.work_dir = str(tmp_path)
    cfg.load_from = str(files / 'image.pth')
    cfg.optim_wrapper = dict(type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01))
    cfg.train_dataloader.dataset.update(
        ann_file=str(files / 'list.txt'), data_prefix=dict(video=str(files)))
    cfg.train_dataloader.num_workers = 0
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.custom_hooks = [dict(type='CheckpointLoadHook')]
    cfg.param_scheduler = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(CheckpointMismatchError, match=INFLATE) as err:
        runner.train()
    assert 'partial_load=True' in str(err.value)
    # the opt-in: partial_load=True in the config warns and loads what fits
    cfg.partial_load = True
    cfg.train_cfg.max_epochs = 1
    cfg.optim_wrapper.optimizer.lr = 0.0  # the loaded weights stay
    runner = Runner.from_cfg(cfg)
    runner.train()
    ref = torch.load(files / 'image.pth')['state_dict']
    own = runner.model.state_dict()
    fits = [k for k in ref if k in own and k.startswith('backbone.layers')
            and ref[k].shape == own[k].shape]
    assert fits and all(torch.equal(own[k], ref[k]) for k in fits)
