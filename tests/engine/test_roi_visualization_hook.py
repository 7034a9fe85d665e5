"""RoIVisualizationHook in short real Runner runs (image and video)."""
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from PIL import Image

from data_helpers import make_motion_dataset, make_shape_dataset
from sparseformer_mm.engine import RoIVisualizationHook

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
VIDEO_CFG = osp.join(
    REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')


def _short(cfg, work_dir, max_epochs, hook):
    cfg.work_dir = str(work_dir)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers = 0
        loader.batch_size = 4
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                         val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.custom_hooks = [hook]
    cfg.log_level = 'WARNING'
    return cfg


def test_demo_configs_turn_it_on():
    for path in (IMAGE_CFG, VIDEO_CFG):
        types = [h['type'] for h in Config.fromfile(path).custom_hooks]
        assert types.count('RoIVisualizationHook') == 1
    assert HOOKS.get('RoIVisualizationHook') is RoIVisualizationHook


@pytest.mark.slow
def test_drawing_is_imported_only_when_used():
    # A fresh interpreter: this test process has imported the drawing code.
    code = '\n'.join([
        'import sys',
        'import sparseformer_mm',
        "DRAW = 'sparseformer_mm.visualization.roi_vis'",
        'from mmengine.registry import HOOKS',
        "assert HOOKS.get('RoIVisualizationHook') is not None",
        'print(DRAW in sys.modules)',
        'from sparseformer_mm.visualization import visualize_trace',
        'print(DRAW in sys.modules, visualize_trace.__module__)',
    ])
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split('\n')[:2] == [
        'False', 'True sparseformer_mm.visualization.roi_vis']


def test_image_run_writes_pictures_every_interval(tmp_path):
    data = tmp_path / 'shapes'
    make_shape_dataset(str(data), num_train=1, num_val=1, size=32)  # 4 + 4
    cfg = Config.fromfile(IMAGE_CFG)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = str(data)
    hook = dict(type='RoIVisualizationHook', num_samples=2, interval=2)
    runner = Runner.from_cfg(_short(cfg, tmp_path / 'work', 2, hook))
    runner.train()
    root = tmp_path / 'work' / 'vis_rois'
    # validated after epochs 1 and 2; interval=2 draws after the second
    assert [p.name for p in root.iterdir()] == ['epoch_2']
    names = sorted(p.name for p in (root / 'epoch_2').iterdir())
    # samples 0 and 3: the ends of the 4-image validation set
    assert names == ['sample_0_density.png', 'sample_0_passes.png',
                     'sample_3_density.png', 'sample_3_passes.png']
    # 32 px images are drawn at 8x: input + 5 passes
    assert Image.open(root / 'epoch_2' / 'sample_0_passes.png').size == \
        (6 * 256 + 5 * 4, 256 + 14)


def test_video_run_writes_tubes(tmp_path):
    data = tmp_path / 'motion'
    make_motion_dataset(str(data), num_train=1, num_val=1, size=64,
                        num_frames=32)
    cfg = Config.fromfile(VIDEO_CFG)
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader)):
        loader.dataset.ann_file = str(
            data / f'kinetics400_{split}_list_videos.txt')
        loader.dataset.data_prefix = dict(video=str(data / f'videos_{split}'))
    hook = dict(type='RoIVisualizationHook', indices=[1], scale=1)
    runner = Runner.from_cfg(_short(cfg, tmp_path / 'work', 1, hook))
    runner.train()
    out = tmp_path / 'work' / 'vis_rois' / 'epoch_1'
    assert sorted(p.name for p in out.iterdir()) == [
        'sample_1_density.png', 'sample_1_passes.png',
        'sample_1_tubes.gif', 'sample_1_tubes.png']
    gif = Image.open(out / 'sample_1_tubes.gif')
    assert gif.n_frames == 4 and gif.size == (64, 64 + 14)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match='interval must be >= 1'):
        RoIVisualizationHook(interval=0)
    with pytest.raises(IndexError, match='out of range for a validation set '
                       'of 3'):
        RoIVisualizationHook(indices=[5])._pick(3)
