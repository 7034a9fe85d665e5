"""tools/infer.py prints the top labels of a real video file; an input with
NaN / Inf pixels is named (CLI and inference API), not ranked."""
import os.path as osp
import re
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

from data_helpers import make_motion_dataset
from sparseformer_mm.visualization import init_model, predict

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

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


IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
# The image demo, reading images unchanged (a float TIFF stays float, NaN
# and Inf pixels included), as a config for scientific images would.
FLOAT_IMAGE_CFG = f"""
_base_ = {IMAGE_CFG!r}
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile', color_type='unchanged'),
    dict(type='PackInputs')]))
"""


def test_non_finite_pixels_are_named_not_ranked(tmp_path):
    """A float TIFF with a NaN and an Inf pixel: the inference API warns,
    naming the file (scores NaN), and tools/infer.py says so and prints no
    ranking; the same image without them is classified quietly."""
    config = tmp_path / 'float_images.py'
    config.write_text(FLOAT_IMAGE_CFG)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = PRETRAIN_MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    ckpt = tmp_path / 'image.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    pixels = np.random.default_rng(0).uniform(0, 255, (32, 32, 3))
    good, bad = tmp_path / 'good.tiff', tmp_path / 'bad.tiff'
    assert cv2.imwrite(str(good), pixels.astype(np.float32))
    pixels[3, 4, 0], pixels[5, 6, 2] = np.nan, np.inf
    assert cv2.imwrite(str(bad), pixels.astype(np.float32))

    model = init_model(str(config), str(ckpt))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no warning for the finite image
        scores = predict(model, str(good)).pred_score
    assert scores.isfinite().all() and abs(float(scores.sum()) - 1) < 1e-5
    with pytest.warns(UserWarning, match=re.escape(
            f'input {bad} has 2 non-finite value(s) (NaN / Inf) of 3072 '
            'after preprocessing')):
        assert predict(model, str(bad)).pred_score.isnan().all()

    res = subprocess.run(
        [sys.executable, 'tools/infer.py', str(config), str(ckpt), str(bad)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert f'warning: input {bad} has 2 non-finite value(s)' in res.stderr, \
        res.stderr[-2000:]
    assert f'error: the scores for {bad} are not finite' in res.stderr
    assert not re.search(r'^\s*\d\. ', res.stdout, re.M), res.stdout
