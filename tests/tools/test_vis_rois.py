"""tools/visualizations/vis_rois.py end to end on an image and an mp4."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from PIL import Image

from data_helpers import make_motion_clip, make_shape_image, write_video
from sparseformer_mm.visualization.roi_vis import GAP, HEADER

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/visualizations/vis_rois.py'
IMAGE_CFG = 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'
VIDEO_CFG = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'


def _checkpoint(cfg_path, path):
    cfg = Config.fromfile(osp.join(REPO, cfg_path))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def _run(*args):
    res = subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    return res


def test_vis_rois_on_an_image(tmp_path):
    ckpt = _checkpoint(IMAGE_CFG, tmp_path / 'image.pth')
    img, _ = make_shape_image(np.random.default_rng(0), 'cross', size=64)
    cv2.imwrite(str(tmp_path / 'cross.png'), img)
    out = tmp_path / 'vis'
    res = _run(IMAGE_CFG, ckpt, tmp_path / 'cross.png', '--out', out)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '64x64 px, 5 sampling passes, 16 tokens' in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ['cross_density.png',
                                                     'cross_passes.png']
    for name in ('cross_density.png', 'cross_passes.png'):
        assert f'wrote {out / name}' in res.stdout
    grid = np.asarray(Image.open(out / 'cross_passes.png'))
    # 64 px is shown at 4x: the input panel, then 5 passes
    assert grid.shape == (256 + HEADER, 6 * 256 + 5 * GAP, 3)
    plain = cv2.resize(img[..., ::-1], (256, 256),
                       interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(grid[HEADER:, :256], plain)
    last = grid[HEADER:, -256:]
    assert (last != plain).any(axis=-1).mean() > 0.02  # RoIs drawn over it

    bad = _run(IMAGE_CFG, ckpt, tmp_path / 'missing.png', '--out', out)
    assert bad.returncode != 0 and 'missing.png does not exist' in bad.stderr


def test_vis_rois_on_a_video(tmp_path):
    ckpt = _checkpoint(VIDEO_CFG, tmp_path / 'video.pth')
    frames, _, _ = make_motion_clip(np.random.default_rng(0), 'move_right',
                                    size=64, num_frames=32)
    write_video(str(tmp_path / 'right.mp4'), frames)
    out = tmp_path / 'vis'
    res = _run(VIDEO_CFG, ckpt, tmp_path / 'right.mp4', '--out', out,
               '--scale', '2')
    assert res.returncode == 0, res.stderr[-3000:]
    # the demo's test pipeline: clips of 4 frames; R=2 replicas x 16 tokens
    assert '4-frame clip of 64x64 px, 5 sampling passes, 32 tokens' \
        in res.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == ['right_density.png', 'right_passes.png',
                     'right_tubes.gif', 'right_tubes.png']
    gif = Image.open(out / 'right_tubes.gif')
    assert gif.n_frames == 4 and gif.size == (128, 128 + HEADER)
    assert Image.open(out / 'right_passes.png').size == \
        (4 * 128 + 3 * GAP, 6 * (128 + HEADER) + 5 * GAP)
