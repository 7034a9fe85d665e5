"""The bootstrapped Kinetics-400 configs train from bootstrapped image
weights (a tiny bootstrapped arch on generated clips, real Runner)."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from data_helpers import make_motion_dataset
from sparseformer_mm.archs import btsp_arch
from sparseformer_mm.models import build_classifier

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(
    REPO, 'configs/videosparseformer/videosparseformer-btsp-*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_btsp_k400_config_trains_from_image_weights(tmp_path, path):
    assert len(CONFIGS) == 2
    arch = btsp_arch(4, 64, 64, 2, clip='clip' in osp.basename(path))
    image = build_classifier(arch, 10)
    ckpt = tmp_path / 'btsp_image.pth'
    torch.save({'state_dict': image.state_dict(), 'meta': {}}, ckpt)
    root = tmp_path / 'clips'
    make_motion_dataset(str(root), num_train=1, num_val=1, size=64,
                        num_frames=8, seed=0)
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(arch=arch, replicates=2, pretrained=str(ckpt))
    cfg.model.neck.in_channels = cfg.model.cls_head.in_channels = 64
    sample = dict(type='SampleFrames', clip_len=4, frame_interval=2,
                  num_clips=1)
    cfg.train_dataloader.update(batch_size=2, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.dataset.update(
        ann_file=f'{root}/kinetics400_train_list_videos.txt',
        data_prefix=dict(video=f'{root}/videos_train'), min_frames=4,
        pipeline=[dict(type='DecordInit'), sample,
                  dict(type='DecordDecode'),
                  dict(type='Resize', scale=(32, 32), keep_ratio=False),
                  dict(type='FormatShape', input_format='NCTHW'),
                  dict(type='PackActionInputs')])
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    bb = runner.model.backbone
    assert bb.num_total_tokens == 4 * 2 and bb.cls_token_layer is not None
    # the inherited blocks came from the image checkpoint (not retrained
    # away in 2 steps: close), the class token too
    img = image.state_dict()
    assert torch.allclose(bb.cls_embedding.weight,
                          img['backbone.cls_embedding.weight'], atol=1e-2)
    records = [json.loads(line) for line in open(glob.glob(
        osp.join(cfg.work_dir, '*/vis_data/scalars.json'))[0])]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
