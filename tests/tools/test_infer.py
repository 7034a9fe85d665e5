"""tools/infer.py prints the top labels of a real video file."""
import os.path as osp
import re
import subprocess
import sys

import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from data_helpers import make_motion_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')


def test_infer_prints_top_labels(tmp_path):
    root = tmp_path / 'motion'
    make_motion_dataset(str(root), num_train=1, num_val=0, size=64,
                        num_frames=32)
    video = sorted((root / 'videos_train' / 'move_up').glob('*.mp4'))[0]
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(Config.fromfile(CFG).model)
    with torch.no_grad():  # a decisive head: always "move_up" (label 3)
        model.cls_head.fc_cls.weight.zero_()
        model.cls_head.fc_cls.bias.copy_(torch.tensor([0., 1., 2., 5.]))
    ckpt = tmp_path / 'video.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    res = subprocess.run(
        [sys.executable, 'tools/infer.py', CFG, str(ckpt), str(video),
         '--label-map', str(root / 'classes.txt')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    ranked = [ln for ln in lines if re.match(r'^\d\. ', ln)]
    assert len(ranked) == 4  # top-5 of 4 classes
    assert ranked[0].startswith('1. move_up')
    assert ranked[1].startswith('2. move_right')
    bad = subprocess.run([sys.executable, 'tools/infer.py', CFG, str(ckpt),
                          'missing.mp4'], cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and 'missing.mp4 does not exist' in bad.stderr
