"""The 16:9 motion clips of tools/data/synthetic_videos.py that
projects/full_frame_views tests on, and `make demo`'s square ones unchanged
by the wide-frame option."""
import numpy as np
import pytest

import make_synthetic_videos
import synthetic_videos
from data_helpers import MOTION_CLASSES, make_motion_clip

SIGN = {'move_down': (0, 1), 'move_left': (-1, 0), 'move_right': (1, 0),
        'move_up': (0, -1)}


def test_default_clips_are_unchanged():
    """`make demo`'s clips: the first training clip of each class (seed 0)
    as the generator made them before frames could be wide."""
    golden = {
        'move_down': ([16, 5, 30, 19], [16, 44, 30, 58], 'cross', 1.253046,
                      [62, 143, 10]),
        'move_left': ([38, 14, 54, 30], [5, 14, 21, 30], 'cross', 1.076142,
                      [187, 201, 84]),
        'move_right': ([9, 33, 23, 47], [46, 33, 60, 47], 'circle',
                       1.195264, [76, 86, 237]),
        'move_up': ([17, 41, 33, 57], [17, 8, 33, 24], 'triangle', 1.060715,
                    [194, 135, 4]),
    }
    for label, cls in enumerate(MOTION_CLASSES):
        for size in (64, (64, 64)):  # a square given either way
            frames, boxes, info = make_motion_clip(
                np.random.default_rng([0, 0, label, 0]), cls, size)
            first, last, shape, speed, color = golden[cls]
            assert frames.shape == (32, 64, 64, 3)
            assert (boxes[0], boxes[-1], info['shape'], info['color']) == (
                first, last, shape, color)
            assert info['speed'] == pytest.approx(speed, abs=1e-6)


def test_wide_clips_put_the_object_anywhere():
    """128x72 clips: the object inside the frame in every frame, moving the
    class's way; over many clips its path spans the whole width, with
    speeds in one range for all directions."""
    centres, speeds = [], {'h': [], 'v': []}
    for i in range(40):
        cls = MOTION_CLASSES[i % 4]
        frames, boxes, info = make_motion_clip(np.random.default_rng(i), cls,
                                               (128, 72))
        assert frames.shape == (32, 72, 128, 3)
        b = np.array(boxes)
        assert b[:, [0, 1]].min() >= 0 and b[:, 2].max() <= 127 \
            and b[:, 3].max() <= 71
        sx, sy = SIGN[cls]
        step = np.diff(b[:, 0] if sx else b[:, 1]) * (sx or sy)
        assert (step >= 0).all() and step.sum() > 0
        centres.append((b[:, 0] + b[:, 2]).mean() / 2)
        speeds['h' if sx else 'v'].append(info['speed'])
    # a 72x72 centre crop (columns 28-99) misses some paths' centres
    assert min(centres) < 28 and max(centres) > 100
    # object and speed follow the short side (72): 1.125-2.25 px/frame
    for v in speeds['h'] + speeds['v']:
        assert 72 / 64 <= v <= 2 * 72 / 64


def test_size_option_parses_and_refuses_bad_sizes(tmp_path, capsys):
    videos = synthetic_videos
    assert videos.parse_size('64') == 64
    assert videos.parse_size('128x72') == (128, 72)
    for bad in ('12y', '0x5', '-3', 'x'):
        with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
            videos.parse_size(bad)
    tool = make_synthetic_videos
    with pytest.raises(SystemExit):
        tool.parse_args([str(tmp_path), '--size', '16:9'])
    assert "size '16:9'" in capsys.readouterr().err
