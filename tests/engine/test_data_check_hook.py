"""DataCheckHook in real Runner runs on generated mp4s with bad files."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from data_helpers import add_bad_videos, make_motion_dataset
from sparseformer_mm.datasets import AnnotationError
from sparseformer_mm.engine.hooks import BadDataError, DataCheckHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO,
                'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: on a loaded 2-core machine two threads mostly wait on
    # each other (measured 6x slower than one)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('motion'))
    # 12 good train clips + 5 bad files, 4 val clips
    make_motion_dataset(root, num_train=3, num_val=1, size=32, num_frames=8)
    bad = add_bad_videos(root, 'videos_train',
                         osp.join(root, 'kinetics400_train_list_videos.txt'))
    return root, bad


def _cfg(root, work_dir, max_bad_fraction, num_workers=2):
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work_dir)
    sample = dict(type='SampleFrames', clip_len=4, frame_interval=2)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers = num_workers
        loader.persistent_workers = False
        loader.batch_size = 4
        ds = loader.dataset
        sub = 'train' if split == 'train' else 'val'
        ds.ann_file = f'{root}/kinetics400_{sub}_list_videos.txt'
        ds.data_prefix = dict(video=f'{root}/videos_{sub}')
        for t in ds.pipeline:
            if t['type'] == 'SampleFrames':
                t.update(sample)
    # a smaller model than the demo's: this tests data handling
    cfg.model.backbone.arch = dict(num_tokens=4, focus_dims=32,
                                   cortex_dims=32, cortex_depth=1,
                                   num_points=4)
    cfg.model.backbone.num_heads = 2
    cfg.model.backbone.feat_channels = 16
    cfg.model.neck.in_channels = cfg.model.cls_head.in_channels = 32
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_begin=3,
                         val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='DataCheckHook',
                             max_bad_fraction=max_bad_fraction)]
    cfg.log_level = 'WARNING'
    return cfg


def _hook(runner):
    return next(h for h in runner.hooks if isinstance(h, DataCheckHook))


def test_training_with_bad_videos_completes_with_workers(data, tmp_path):
    root, bad = data
    runner = Runner.from_cfg(_cfg(root, tmp_path / 'w', 0.5))
    runner.train()
    assert runner.epoch == 2 and runner.iter == 10  # 17 samples / 4, x2
    hook = _hook(runner)
    # the 5 bad files, each counted in both epochs (drawn by the workers)
    assert hook.totals['train'] == 10
    assert dict(hook.bad_this_epoch('train')).keys() == set(bad.values())
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    for path in bad.values():  # logged once per run, plus the summaries
        assert log.count(f'bad train sample replaced: {path}') == 1
    assert 'train epoch 1: 5 of 17 samples' in log
    assert 'train epoch 2: 5 of 17 samples' in log
    assert 'were bad and replaced' in log


def test_too_many_bad_videos_is_an_error_naming_them(data, tmp_path):
    root, bad = data
    runner = Runner.from_cfg(_cfg(root, tmp_path / 'w', 0.1, num_workers=0))
    with pytest.raises(BadDataError) as info:
        runner.train()
    msg = str(info.value)
    assert 'of 17 train samples this epoch could not be loaded' in msg
    assert 'max_bad_fraction=0.1' in msg
    assert sum(p in msg for p in bad.values()) >= 2
    assert runner.epoch == 0  # stopped inside the first epoch


def test_labels_beyond_the_head_fail_before_training(tmp_path):
    root = str(tmp_path / 'motion')
    make_motion_dataset(root, num_train=1, num_val=1, size=32, num_frames=8)
    ann = osp.join(root, 'kinetics400_val_list_videos.txt')
    with open(ann, 'a') as f:
        f.write('move_up/00000.mp4 7\n')
    cfg = _cfg(root, tmp_path / 'w', 0.5, num_workers=0)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AnnotationError,
                       match=f'{ann}:5: label 7 is out of range for '
                             'num_classes=4'):
        runner.train()
    assert runner.iter == 0


def test_zero_fraction_makes_any_bad_sample_an_error():
    class Loader:  # what the limit reads: the epoch's samples
        sampler = range(1000)

    one_bad = {'a.mp4': 'empty file (0 bytes)'}
    DataCheckHook(max_bad_fraction=0.01)._check_limit('train', one_bad,
                                                      Loader())
    with pytest.raises(BadDataError, match=r'1 of 1000 train samples .* '
                       r'max_bad_fraction=0 allows:\n  a\.mp4: empty'):
        DataCheckHook(max_bad_fraction=0)._check_limit('train', one_bad,
                                                       Loader())


# -- non-finite inputs and scores in tools/test.py ----------------------------
IMAGE_DEMO = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')


def _save_model(cfg_file, path, scope, spoil=None):
    """A checkpoint of the config's model (random weights); ``spoil`` may
    change its state dict first."""
    import importlib
    from mmengine.registry import DefaultScope
    models = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = models.build(Config.fromfile(cfg_file).model)
    model.init_weights()
    state = model.state_dict()
    if spoil:
        spoil(state)
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path)


def _test_tool(cfg_text, ckpt, tmp_path):
    import os
    import subprocess
    import sys
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(cfg_text)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    res = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg), ckpt, '--work-dir',
         str(tmp_path / 'work')], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]  # the metrics are still printed
    return out


def test_nan_pixels_in_a_test_set_are_named(tmp_path):
    """A float TIFF with NaN pixels among the test images (read unchanged):
    the file is named when its batch arrives and in the epoch's summary."""
    import cv2
    import numpy as np
    from data_helpers import make_shape_dataset
    root = tmp_path / 'shapes'
    make_shape_dataset(str(root), num_train=1, num_val=1, size=32)
    png = sorted((root / 'val').glob('*/*.png'))[1]
    img = cv2.imread(str(png)).astype(np.float32)
    img[:4, :4] = np.nan
    tif = png.with_suffix('.tif')
    assert cv2.imwrite(str(tif), img)
    png.unlink()
    ckpt = _save_model(IMAGE_DEMO, tmp_path / 'model.pth', 'mmpretrain')
    out = _test_tool(
        f'_base_ = [{IMAGE_DEMO!r}]\n'
        'test_dataloader = dict(batch_size=4, num_workers=0, dataset=dict('
        f'data_root={str(root)!r}, data_prefix="val", pipeline=['
        "dict(type='LoadImageFromFile', color_type='unchanged'), "
        "dict(type='PackInputs')]))\n", ckpt, tmp_path)
    assert f'test input {tif} has 48 non-finite value(s)' in out, out[-3000:]
    assert f'1 of 4 samples have non-finite inputs (NaN / Inf): {tif}' in out
    assert 'although their inputs are finite' not in out


def test_nan_weights_in_test_are_said(tmp_path):
    """A checkpoint with a NaN weight: every score is NaN, and the test
    says that the weights are broken instead of printing an accuracy
    alone."""
    root = tmp_path / 'motion'
    make_motion_dataset(str(root), num_train=1, num_val=1, size=32,
                        num_frames=32)

    def spoil(state):
        state['cls_head.fc_cls.weight'][0, 0] = float('nan')

    ckpt = _save_model(DEMO, tmp_path / 'model.pth', 'mmaction', spoil)
    out = _test_tool(
        f'_base_ = [{DEMO!r}]\n'
        'test_dataloader = dict(batch_size=2, num_workers=0, dataset=dict('
        f'ann_file={str(root / "kinetics400_val_list_videos.txt")!r}, '
        f'data_prefix=dict(video={str(root / "videos_val")!r})))\n',
        ckpt, tmp_path)
    assert '4 of 4 samples scored NaN / Inf although their inputs are ' \
        'finite' in out, out[-3000:]
    assert str(root / 'videos_val' / 'move_down' / '00000.mp4') in out
    assert 'weights are broken' in out
