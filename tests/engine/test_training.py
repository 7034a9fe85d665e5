"""Real training through mmengine's Runner on a generated image folder."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from data_helpers import make_shape_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')


def _cfg(data_root, work_dir, max_epochs):
    cfg = Config.fromfile(DEMO_CFG)
    cfg.work_dir = str(work_dir)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = str(data_root)
        loader.num_workers = 0
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                         val_interval=max_epochs)
    cfg.param_scheduler = []  # constant lr: a clean signal in few steps
    cfg.optim_wrapper.optimizer.lr = 4e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=max_epochs, max_keep_ckpts=1)
    cfg.log_level = 'WARNING'
    return cfg


def test_loss_goes_down_and_resume_continues(tmp_path):
    data = tmp_path / 'shapes'
    make_shape_dataset(str(data), num_train=4, num_val=2, size=32, seed=1)
    runner = Runner.from_cfg(_cfg(data, tmp_path / 'work', max_epochs=7))
    runner.train()
    losses = [float(v) for v in
              runner.message_hub.get_scalar('train/loss').data[0]]
    assert len(losses) == 14  # 16 images / batch 8 x 7 epochs
    assert all(map(lambda v: v == v, losses))  # no NaN
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, (first, last)
    # the RoIs were trained too
    roi = runner.model.backbone.initial_roi.weight.detach()
    assert not torch.allclose(roi, runner.model.backbone.initial_rois())

    # resume from the work_dir: training state comes back and continues
    cfg = _cfg(data, tmp_path / 'work', max_epochs=8)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 16 and resumed.epoch == 8
    assert resumed.message_hub.get_info('epoch') is not None
