"""Image configs can skip an unreadable PNG as video configs skip bad
videos: SkipBadSamples around mmpretrain's CustomDataset, in a real Runner
(issue 17, item 11); and non-finite inputs are named (item 7)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from data_helpers import make_shape_dataset
from sparseformer_mm.visualization import warn_non_finite

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')


def test_unreadable_png_is_skipped_in_training(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=2, num_val=0, size=32)
    bad = sorted((tmp_path / 'shapes' / 'train').glob('*/*.png'))[0]
    bad.write_bytes(b'not a png at all')
    cfg = Config.fromfile(IMAGE_CFG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.update(batch_size=4, num_workers=0)
    inner = dict(cfg.train_dataloader.dataset, data_root=root)
    cfg.train_dataloader.dataset = dict(type='SkipBadSamples', dataset=inner)
    cfg.optim_wrapper = dict(type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01))
    cfg.param_scheduler = None
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10)
    cfg.custom_hooks = [dict(type='DataCheckHook', max_bad_fraction=0.5)]
    runner = Runner.from_cfg(cfg)
    runner.train()  # without the wrapper: an exception at the bad file
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert bad.name in log


def test_non_finite_input_warns():
    x = torch.zeros(1, 3, 8, 8)
    assert not warn_non_finite(x, 'ok.png')
    x[0, 0, 0, 0] = float('nan')
    with pytest.warns(UserWarning, match='input bad.png has 1 non-finite'):
        assert warn_non_finite(x, 'bad.png')
