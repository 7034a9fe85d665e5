"""RoI / tube pictures from real (tiny, random-weight) SparseFormer traces."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from data_helpers import make_shape_image
from sparseformer_mm.models.backbones import SparseFormer, VideoSparseFormer
from sparseformer_mm.visualization import (draw_rois, frame_points,
                                           frame_tokens, init_model,
                                           load_input, passes_grid,
                                           trace_model_input, trace_to_pixels,
                                           visualize_trace)
from sparseformer_mm.visualization.roi_vis import GAP, HEADER

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
NANO = dict(num_tokens=4, focus_dims=32, cortex_dims=32, cortex_depth=1,
            num_points=4)


def _trace(model, x):
    with torch.no_grad():
        return model.eval()(x, return_trace=True)


def test_trace_to_pixels_known_answer():
    rois = torch.tensor([[[0.25, 0.5, 0.75, 1.0]]])  # (1, 1, 4)
    points = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])  # (1, 1, 2, 2)
    px = trace_to_pixels(dict(passes=[dict(rois=rois, points=points)]),
                         input_hw=(20, 40))
    np.testing.assert_allclose(px[0]['boxes'], [[10, 10, 30, 20]])
    np.testing.assert_allclose(px[0]['points'], [[[20, 10], [0, 20]]])

    tube = torch.tensor([[[0.0, 0.0, 0.25, 1.0, 1.0, 0.5]]])
    pts = torch.tensor([[[[0.5, 0.5, 0.3], [0.5, 0.5, -0.2]]]])
    px = trace_to_pixels(dict(passes=[dict(rois=tube, points=pts)]),
                         input_hw=(8, 8), num_frames=8)[0]
    np.testing.assert_allclose(px['tspan'], [[2, 4]])
    np.testing.assert_allclose(px['points_t'], [[2.4, -1.6]])
    # the tube [2, 4] covers frames 2 and 3 only
    assert [bool(frame_tokens(px, f)[0]) for f in range(8)] == \
        [False, False, True, True, False, False, False, False]
    # t*T = 2.4 is sampled mostly from frame 2; -1.6 only from padding
    assert frame_points(px, 2, 8).tolist() == [[True, False]]
    assert not frame_points(px, 0, 8).any()
    with pytest.raises(ValueError, match='num_frames'):
        trace_to_pixels(dict(passes=[dict(rois=tube, points=pts)]), (8, 8))


def test_draw_rois_draws_in_the_token_colour():
    img = np.zeros((16, 16, 3), np.uint8)
    px = dict(boxes=np.array([[4.0, 4.0, 12.0, 12.0]]),
              points=np.array([[[8.0, 8.0]]]))
    out = draw_rois(img, px, scale=2, colors=np.array([[255, 0, 0]]),
                    alpha=255)
    assert out.shape == (32, 32, 3)
    assert tuple(out[8, 16]) == (255, 0, 0)  # top edge of the box
    assert tuple(out[16, 16]) == (255, 0, 0)  # the point
    assert tuple(out[2, 2]) == (0, 0, 0)  # outside: untouched


def test_image_pictures_from_a_random_model(tmp_path):
    model = SparseFormer(arch=NANO, num_heads=4)
    rng = np.random.default_rng(0)
    img, _ = make_shape_image(rng, 'circle', size=32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    trace = _trace(model, x)
    assert len(trace['passes']) == 5  # 4 focusing repeats + cortex block 0

    grid = passes_grid(img, trace_to_pixels(trace, (32, 32)), scale=4)
    # input + 5 passes in one row of 128x128 panels with title strips
    assert grid.shape == (128 + HEADER, 6 * 128 + 5 * GAP, 3)
    written = visualize_trace(img, trace, str(tmp_path), prefix='img',
                              scale=4)
    assert [osp.basename(p) for p in written] == ['img_passes.png',
                                                  'img_density.png']
    passes = np.asarray(Image.open(written[0]))
    assert passes.shape == grid.shape
    # panel 0 is the plain upscaled input; the pass panels are drawn over it
    plain = cv2.resize(img, (128, 128), interpolation=cv2.INTER_NEAREST)
    first = passes[HEADER:, :128]
    np.testing.assert_array_equal(first, plain)
    for k in range(1, 6):
        panel = passes[HEADER:, k * (128 + GAP):k * (128 + GAP) + 128]
        assert (panel != plain).any(axis=-1).mean() > 0.02
    density = np.asarray(Image.open(written[1]))
    assert density.shape == (128 + HEADER, 2 * 128 + GAP, 3)
    assert (density[HEADER:, 128 + GAP:] != plain).any()


def test_video_pictures_and_gif(tmp_path):
    T = 4
    model = VideoSparseFormer(arch=NANO, num_heads=4, replicates=2)
    clip = np.random.default_rng(1).integers(0, 256, (T, 32, 32, 3),
                                             dtype=np.uint8)
    x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 255
    trace = _trace(model, x)
    written = visualize_trace(clip, trace, str(tmp_path), prefix='clip',
                              scale=2)
    names = [osp.basename(p) for p in written]
    assert names == ['clip_passes.png', 'clip_density.png', 'clip_tubes.png',
                     'clip_tubes.gif']
    ph, pw = 64 + HEADER, 64
    # rows: the frames, then 5 passes; one column per frame
    assert Image.open(written[0]).size == (T * pw + (T - 1) * GAP,
                                           6 * ph + 5 * GAP)
    assert Image.open(written[2]).size == (T * pw + (T - 1) * GAP, ph)
    gif = Image.open(written[3])
    assert gif.n_frames == T and gif.size == (pw, ph)
    # a frame of the GIF is that frame of the clip with tubes drawn on it
    gif.seek(2)
    frame = np.asarray(gif.convert('RGB'))[HEADER:]
    plain = cv2.resize(clip[2], (64, 64), interpolation=cv2.INTER_NEAREST)
    assert (np.abs(frame.astype(int) - plain).max(axis=-1) > 40).mean() > 0.02
    with pytest.raises(ValueError, match='trace is from a video model'):
        visualize_trace(clip[0], trace, str(tmp_path))


def test_trace_model_input_shows_what_the_model_saw(tmp_path):
    """The demo config's test pipeline leaves 32x32 images as they are, so
    the displayed input is the file's pixels in RGB."""
    rng = np.random.default_rng(2)
    img, _ = make_shape_image(rng, 'square', size=32)  # BGR
    path = str(tmp_path / 'square.png')
    cv2.imwrite(path, img)
    model = init_model(IMAGE_CFG)  # random weights, eval mode
    model.train()
    trace, display = trace_model_input(model,
                                       load_input(model.cfg, path))
    assert model.training  # traced in eval mode, then restored
    np.testing.assert_array_equal(display, img[..., ::-1])
    assert trace['rois'].shape == (1, 16, 4)
    assert trace['passes'][-1]['points'].shape == (1, 16, 16, 2)
    video = tmp_path / 'x.mp4'
    video.write_bytes(b'')
    with pytest.raises(ValueError, match='looks like a video'):
        load_input(Config.fromfile(IMAGE_CFG), str(video))
