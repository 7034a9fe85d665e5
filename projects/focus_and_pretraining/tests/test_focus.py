"""The foreground-focus metric on hand-made points, RoIs and boxes."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from data_helpers import REPO, make_motion_dataset, make_shape_dataset
from projects.focus_and_pretraining import focus

BOX = torch.tensor([0.25, 0.25, 0.75, 0.5])  # a quarter-height strip


def test_box_share_exact_and_clipped():
    assert focus.box_share(BOX) == pytest.approx(0.5 * 0.25)
    # the part outside the frame does not count
    outside = torch.tensor([-0.5, 0.0, 0.5, 1.0])
    assert focus.box_share(outside) == pytest.approx(0.5)
    # video: mean over the frames fed to the model
    frames = torch.tensor([[0., 0., 1., 1.], [0., 0., 0.5, 0.5]])
    assert focus.box_share(frames) == pytest.approx((1 + 0.25) / 2)


def test_point_hits_all_half_and_outside_image():
    inside = torch.tensor([[0.3, 0.3], [0.5, 0.4], [0.7, 0.49]])
    assert focus.point_hits(inside, BOX).all()
    half = torch.tensor([[0.3, 0.3], [0.5, 0.4], [0.1, 0.1], [0.9, 0.9]])
    assert focus.point_hits(half, BOX).double().mean() == 0.5
    # A box touching the image border: points beyond the image are outside
    # even where they are "inside" the box's extension.
    edge = torch.tensor([0.0, 0.0, 0.5, 1.0])
    pts = torch.tensor([[-0.1, 0.5], [0.2, 1.05], [0.2, 0.5], [0.0, 1.0]])
    assert focus.point_hits(pts, edge).tolist() == [False, False, True, True]
    # leading dims (tokens, points) are kept
    assert focus.point_hits(torch.rand(5, 7, 2), BOX).shape == (5, 7)


def test_temporal_frame_mapping():
    # frame k of a T-frame clip spans t in [k/T, (k+1)/T]
    T = 4
    assert focus.t_to_frame(torch.tensor([0.0, 0.24, 0.25, 0.3, 0.99, 1.0]),
                            T).tolist() == [0, 0, 1, 1, 3, 3]
    # the object is in a different quadrant in every frame
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5],
                          [0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]])
    p = torch.tensor([[0.25, 0.25, 0.1],   # frame 0, its box: hit
                      [0.25, 0.25, 0.3],   # frame 1: object moved right
                      [0.75, 0.25, 0.3],   # frame 1: hit
                      [0.75, 0.75, 0.9],   # frame 3: hit
                      [0.75, 0.75, 1.2],   # after the clip: outside
                      [0.25, 0.25, -0.1]])  # before the clip: outside
    assert focus.point_hits(p, boxes).tolist() == [True, False, True, True,
                                                   False, False]


def test_roi_area_fraction():
    assert focus.roi_box_overlap(BOX, BOX) == pytest.approx(1.0)
    rois = torch.tensor([[0.25, 0.25, 0.75, 0.75],   # half of it on the box
                         [-0.5, 0.25, 0.5, 0.5],     # clipped to [0, .5]: half
                         [1.1, 1.1, 1.5, 1.5],       # outside the image: 0
                         [0.75, 0.25, 0.25, 0.5]])   # corners swapped: 1
    assert focus.roi_box_overlap(rois, BOX).tolist() == pytest.approx(
        [0.5, 0.5, 0.0, 1.0])


def test_tube_volume_fraction():
    boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 0., 0.]])  # T = 2
    tubes = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 0.5],   # frame 0 only
                          [0.0, 0.0, 0.0, 1.0, 1.0, 1.0],   # both frames
                          [0.0, 0.0, 0.25, 0.5, 1.0, 1.5]])  # clipped in t
    # third: t in [0.25, 1] -> 0.25 of frame 0 (full box) over 0.75 in all
    assert focus.roi_box_overlap(tubes, boxes).tolist() == pytest.approx(
        [1.0, 0.5, 1 / 3])


def test_sample_focus_and_summary_lift():
    # two tokens of four points: token 0 all on the box, token 1 half
    pts = torch.tensor([[[0.3, 0.3], [0.4, 0.3], [0.5, 0.4], [0.6, 0.45]],
                        [[0.3, 0.3], [0.4, 0.3], [0.1, 0.9], [0.9, 0.9]]])
    rois = torch.stack([BOX, torch.tensor([0.0, 0.0, 1.0, 1.0])])
    s = focus.sample_focus([dict(rois=rois, points=pts)] * 2, rois, BOX)
    assert s['chance'] == pytest.approx(0.125)
    p = s['passes'][0]
    assert p['points_in'] == pytest.approx(0.75)
    assert p['best_token_points_in'] == pytest.approx(1.0)
    assert p['roi_in'] == pytest.approx((1.0 + 0.125) / 2)
    summary = focus.summarize_focus([s, s])
    assert summary['last_pass']['points_lift'] == pytest.approx(0.75 / 0.125)
    assert summary['mean_over_passes']['roi_lift'] == pytest.approx(
        0.5625 / 0.125)
    table = focus.format_focus_table(summary, 'toy')
    assert 'toy' in table and '6.00x' in table


def test_pixel_boxes_follow_resize_crop_flip():
    """Boxes mapped through mmaction2's Resize, CenterCrop and Flip land on
    the pixels the transformed frames show."""
    from mmaction.datasets.transforms import CenterCrop, Flip, Resize
    h, w = 48, 64
    box = [40, 10, 49, 21]  # inclusive pixels
    frame = np.zeros((h, w, 3), np.uint8)
    frame[box[1]:box[3] + 1, box[0]:box[2] + 1] = 255
    info = dict(imgs=[frame] * 2, img_shape=(h, w), original_shape=(h, w),
                frame_inds=np.array([0, 5]), clip_len=2, num_clips=1,
                modality='RGB')
    transforms = [Resize(scale=(-1, 96)), CenterCrop(crop_size=80),
                  Flip(flip_ratio=1.0)]
    results, geo = focus.run_pipeline_tracking(transforms, info)
    assert geo['img_shape'] == (80, 80)
    unit = focus.pixel_boxes_to_unit(box, geo)
    ys, xs = np.nonzero(results['imgs'][0][..., 0] > 127)
    seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / 80
    assert np.abs(unit - seen).max() <= 1.5 / 80
    # the clip's frames 0 and 5 of a 6-frame annotation
    per_frame = [[0, 0, 1, 1]] * 5 + [box]
    boxes = focus.clip_boxes(per_frame, geo)
    assert len(boxes) == 1 and boxes[0].shape == (2, 4)
    assert np.allclose(boxes[0][1], unit)


def test_pixel_boxes_identity_geometry():
    geo = dict(affine=(1.0, 0.0, 1.0, 0.0), img_shape=(64, 64))
    assert np.allclose(focus.pixel_boxes_to_unit([0, 0, 63, 63], geo),
                       [0, 0, 1, 1])
    assert np.allclose(focus.pixel_boxes_to_unit([16, 0, 31, 15], geo),
                       [0.25, 0, 0.5, 0.25])


def test_image_boxes_replayed_and_verified(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=2, num_val=1, size=32, seed=3)
    boxes = focus.replay_shape_boxes(root, seed=3)
    assert len(boxes) == 4 * 3
    x1, y1, x2, y2 = boxes['val/cross/00000.png']
    assert 0 <= x1 < x2 < 32 and 0 <= y1 < y2 < 32
    with pytest.raises(ValueError, match='seed'):
        focus.replay_shape_boxes(root, seed=4)
    # the generator's boxes.json holds the same boxes as the replay
    with open(osp.join(root, 'boxes.json')) as f:
        assert json.load(f)['boxes'] == boxes
    # the 'auto' annotation finds the box from a sample's path: from
    # boxes.json, and by replay (seed needed) where the data has none
    info = dict(img_path=f'{root}/val/cross/00000.png')
    box = [[x1, y1, x2, y2]]
    assert focus.load_box_annotations('auto')(info) == box
    os.remove(osp.join(root, 'boxes.json'))
    assert focus.load_box_annotations('auto', seed=3)(info) == box
    with pytest.raises(ValueError, match='seed'):
        focus.load_box_annotations('auto', seed=4)(info)
    # a json annotation, matched by path suffix
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps({'cross/00000.png': [1, 2, 3, 4]}))
    assert focus.load_box_annotations(str(ann))(info) == [[1, 2, 3, 4]]
    with pytest.raises(KeyError, match='no box'):
        focus.load_box_annotations(str(ann))(
            dict(img_path='x/circle/00000.png'))


def test_clip_boxes_follow_the_object_in_decoded_frames(tmp_path):
    """On real generated mp4 clips through the demo val pipeline, the box
    mapped to clip frame k surrounds the moving object seen in that frame."""
    from mmengine.config import Config
    from mmengine.registry import DATASETS, DefaultScope

    root = tmp_path / 'motion'
    make_motion_dataset(str(root), num_train=1, num_val=1)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'))
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.ann_file = str(root / 'kinetics400_val_list_videos.txt')
    ds_cfg.data_prefix = dict(video=str(root / 'videos_val'))
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = DATASETS.build(ds_cfg)
        boxes_for = focus.load_box_annotations('auto')
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            results, geo = focus.run_pipeline_tracking(
                dataset.pipeline.transforms, info)
            assert len(geo['frame_inds']) == geo['clip_len'] == 4
            (boxes, ) = focus.clip_boxes(boxes_for(info), geo)
            # packed (clips, C, T, H, W) -> (T, H, W, C) of clip 0
            frames = results['inputs'][0].permute(1, 2, 3, 0).float().numpy()
            background = np.median(frames, axis=0)
            h, w = frames.shape[1:3]
            for k, frame in enumerate(frames):
                ys, xs = np.nonzero(np.abs(frame - background).sum(-1) > 120)
                assert len(xs) > 0
                cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
                x1, y1, x2, y2 = boxes[k]
                assert x1 <= cx <= x2 and y1 <= cy <= y2, (i, k)
