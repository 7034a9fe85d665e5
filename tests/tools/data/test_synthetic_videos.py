"""The motion video dataset: real mp4 files, boxes, lists, VideoDataset."""
import json
import os.path as osp

import decord
import mmaction.datasets  # noqa: F401  (registers VideoDataset, Decord*)
import numpy as np
import pytest
from mmaction.registry import DATASETS

from data_helpers import (MOTION_CLASSES, make_motion_clip,
                          make_motion_dataset)

SIGN = {'move_down': (0, 1), 'move_left': (-1, 0), 'move_right': (1, 0),
        'move_up': (0, -1)}


@pytest.fixture(scope='module')
def motion_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('motion'))
    counts = make_motion_dataset(root, num_train=2, num_val=1, seed=3)
    assert counts == {'train': 8, 'val': 4}
    return root


def _box_mask(boxes, shape, margin=0):
    mask = np.zeros(shape, bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, y1 - margin):y2 + 1 + margin,
             max(0, x1 - margin):x2 + 1 + margin] = True
    return mask


@pytest.mark.parametrize('cls', MOTION_CLASSES)
def test_clip_moves_the_object_in_the_class_direction(cls):
    frames, boxes, info = make_motion_clip(np.random.default_rng(7), cls,
                                           size=64, num_frames=32)
    assert frames.shape == (32, 64, 64, 3) and frames.dtype == np.uint8
    assert len(boxes) == 32
    b = np.array(boxes)
    assert b.min() >= 0 and b.max() <= 63  # fully inside in every frame
    sx, sy = SIGN[cls]
    step = np.diff(b[:, 0] if sx else b[:, 1]) * (sx or sy)
    assert (step >= 0).all() and step.sum() >= 30  # ~>= 1 px/frame
    assert 1 <= step.mean() <= 2
    across = b[:, 1] if sx else b[:, 0]
    assert (across == across[0]).all()  # no sideways drift
    assert 1 <= info['speed'] <= 2 and info['shape'] in (
        'circle', 'square', 'triangle', 'cross')
    # Static background: outside both boxes, first and last frame agree
    # exactly; inside the boxes the object changes them.
    diff = np.abs(frames[0].astype(int) - frames[-1]).sum(-1)
    mask = _box_mask([boxes[0], boxes[-1]], diff.shape)
    assert diff[~mask].max() == 0
    assert (diff[mask] > 0).mean() > 0.3


def test_clip_is_deterministic_and_checks_its_arguments():
    a = make_motion_clip(np.random.default_rng(1), 'move_up')
    b = make_motion_clip(np.random.default_rng(1), 'move_up')
    c = make_motion_clip(np.random.default_rng(2), 'move_up')
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError, match='unknown direction'):
        make_motion_clip(np.random.default_rng(0), 'spin')
    with pytest.raises(ValueError, match='do not fit'):
        make_motion_clip(np.random.default_rng(0), 'move_up', num_frames=200)


def test_dataset_videos_decode_and_boxes_match_pixels(motion_root):
    for split, n in (('train', 2), ('val', 1)):
        for cls in MOTION_CLASSES:
            for i in range(n):
                path = osp.join(motion_root, f'videos_{split}', cls,
                                f'{i:05d}.mp4')
                vr = decord.VideoReader(path)
                assert len(vr) == 32
                assert vr[0].shape == (64, 64, 3)
                assert vr.get_avg_fps() == pytest.approx(16)
                with open(path[:-4] + '.boxes.json') as f:
                    meta = json.load(f)
                assert meta['class'] == cls and meta['shape']
                boxes = meta['boxes']
                assert len(boxes) == 32
                sx, sy = SIGN[cls]
                first, last = np.array(boxes[0]), np.array(boxes[-1])
                assert ((last - first)[[0, 2]] * sx >= 0).all()
                assert ((last - first)[[1, 3]] * sy >= 0).all()
                assert np.abs(last - first).sum() >= 2 * 30
                # On the *decoded* frames, what changes between the first
                # and the last frame is the object at its saved boxes (the
                # 2 px margin allows for chroma subsampling bleeding).
                f0, f1 = vr.get_batch([0, 31]).asnumpy().astype(int)
                diff = np.abs(f0 - f1).sum(-1)
                inside = _box_mask([boxes[0], boxes[-1]], diff.shape)
                near = _box_mask([boxes[0], boxes[-1]], diff.shape, 2)
                changed = diff > 60
                assert changed[inside].mean() > 0.3
                assert (changed & near).sum() >= 0.9 * changed.sum()
                assert diff[inside].mean() > 5 * diff[~near].mean()


def test_dataset_lists_round_trip_through_video_dataset(motion_root):
    with open(osp.join(motion_root, 'classes.txt')) as f:
        assert f.read().split() == list(MOTION_CLASSES)
    with open(osp.join(motion_root, 'kinetics400_val_list_videos.txt')) as f:
        lines = f.read().splitlines()
    assert lines == [
        f'{c}/00000.mp4 {i}' for i, c in enumerate(MOTION_CLASSES)]

    pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=8, frame_interval=4, num_clips=1,
             test_mode=True),
        dict(type='DecordDecode'),
    ]
    ds = DATASETS.build(
        dict(type='VideoDataset', _scope_='mmaction',
             ann_file=osp.join(motion_root,
                               'kinetics400_train_list_videos.txt'),
             data_prefix=dict(video=osp.join(motion_root, 'videos_train')),
             pipeline=pipeline, test_mode=True))
    assert len(ds) == 8
    assert ds.get_data_info(0)['label'] == 0
    assert [ds.get_data_info(i)['label'] for i in range(8)] == [
        0, 0, 1, 1, 2, 2, 3, 3]
    sample = ds[0]
    assert sample['label'] == 0 and sample['total_frames'] == 32
    assert len(sample['imgs']) == 8 and sample['imgs'][0].shape == (64, 64, 3)


def test_dataset_is_deterministic(motion_root, tmp_path):
    make_motion_dataset(str(tmp_path), num_train=1, num_val=0, seed=3)
    for cls in MOTION_CLASSES:
        rel = osp.join('videos_train', cls, '00000')
        with open(osp.join(motion_root, rel + '.boxes.json')) as f:
            ref = json.load(f)
        with open(osp.join(str(tmp_path), rel + '.boxes.json')) as f:
            assert json.load(f) == ref
        a = decord.VideoReader(osp.join(motion_root, rel + '.mp4'))
        b = decord.VideoReader(osp.join(str(tmp_path), rel + '.mp4'))
        assert np.array_equal(a[5].asnumpy(), b[5].asnumpy())
    # No val split asked for: no val folder, no val list.
    assert not osp.exists(tmp_path / 'videos_val')
    assert not osp.exists(tmp_path / 'kinetics400_val_list_videos.txt')


def test_make_synthetic_videos_tool_skips_and_forces(tmp_path, capsys):
    import make_synthetic_videos as tool
    root = str(tmp_path / 'motion')
    small = ['--num-frames', '8', '--size', '32']
    tool.main([root, '--num-train', '2', '--num-val', '1'] + small)
    assert 'wrote' in capsys.readouterr().out
    tool.main([root, '--num-train', '1', '--num-val', '1'] + small)
    assert 'keeping it' in capsys.readouterr().out
    with open(osp.join(root, 'kinetics400_train_list_videos.txt')) as f:
        assert len(f.read().splitlines()) == 8
    # --force starts over: the old third video per class is gone.
    tool.main([root, '--num-train', '1', '--num-val', '1', '--force'] + small)
    with open(osp.join(root, 'kinetics400_train_list_videos.txt')) as f:
        assert len(f.read().splitlines()) == 4
    assert not osp.exists(osp.join(root, 'videos_train', 'move_up',
                                   '00001.mp4'))
    vr = decord.VideoReader(osp.join(root, 'videos_val', 'move_up',
                                     '00000.mp4'))
    assert len(vr) == 8 and vr[0].shape == (32, 32, 3)
