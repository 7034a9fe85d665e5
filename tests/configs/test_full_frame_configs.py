"""The full-frame configs: the same run as their crop siblings but for the
views (training: random crops of a 16:9 frame's shape resized to a full
frame's view size, not squares; evaluation: the whole frame), and those
views on real generated mp4s (16:9 and 9:16): the whole frame at its
aspect ratio, short side 224 (64 for the demo), one view per clip, pixels
as an independent resize of the decoded frames."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
from mmaction.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import DefaultScope

import sparseformer_mm  # noqa: F401  (registries)
from data_helpers import make_motion_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
K400_CROPS = osp.join(
    REPO, 'configs/videosparseformer/'
    'videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py')
K400_FULL = K400_CROPS[:-3] + '_full-frame.py'
DEMO_CROPS = osp.join(
    REPO, 'projects/full_frame_views/configs/'
    'videosparseformer-nano_1xb16-4x8x1-6e_motion-wide.py')
DEMO_FULL = DEMO_CROPS[:-3] + '_full-frame.py'
# what a full-frame config changes: the views and the evaluation loops
VIEW_KEYS = ('train_pipeline', 'val_pipeline', 'test_pipeline', 'val_cfg',
             'test_cfg', 'full_frame_size')


def _without_views(cfg):
    d = copy.deepcopy(cfg.to_dict())
    for key in VIEW_KEYS:
        d.pop(key, None)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        d[loader]['dataset'].pop('pipeline')
    return d


@pytest.mark.parametrize('crops,full', [(K400_CROPS, K400_FULL),
                                        (DEMO_CROPS, DEMO_FULL)],
                         ids=['k400', 'demo'])
def test_full_frame_config_differs_only_in_views(crops, full):
    a, b = Config.fromfile(crops), Config.fromfile(full)
    assert _without_views(a) == _without_views(b)
    # training: the same steps; the crop of a 16:9 frame's shape, resized
    # to a 16:9 full frame's view at the crop config's short side
    train_a = a.train_dataloader.dataset.pipeline
    train_b = b.train_dataloader.dataset.pipeline
    assert [t['type'] for t in train_a] == [t['type'] for t in train_b]
    changed = [(x, y) for x, y in zip(train_a, train_b) if x != y]
    assert [x['type'] for x, _ in changed] == ['RandomResizedCrop',
                                               'Resize']
    (crop_a, crop_b), (size_a, size_b) = changed
    low, high = crop_b['aspect_ratio_range']
    assert low <= 4 / 3 and high >= 16 / 9
    assert {k: v for k, v in crop_a.items() if k != 'aspect_ratio_range'} \
        == {k: v for k, v in crop_b.items() if k != 'aspect_ratio_range'}
    side = size_a['scale'][1]
    assert size_a['scale'] == (side, side)
    assert size_b == dict(type='Resize', scale=(round(side * 16 / 9), side),
                          keep_ratio=False)
    # evaluation: no crop, the short side resized, the aspect kept
    for cfg in (b.val_dataloader, b.test_dataloader):
        types = [t['type'] for t in cfg.dataset.pipeline]
        assert not {'CenterCrop', 'ThreeCrop', 'TenCrop'} & set(types)
        resize = [t for t in cfg.dataset.pipeline if t['type'] == 'Resize']
        assert len(resize) == 1 and resize[0]['keep_ratio'] is True
        assert resize[0]['scale'] == (-1, side)
    assert b.val_cfg.type == 'SizeGroupedValLoop'
    assert b.test_cfg.type == 'SizeGroupedTestLoop'


def _dataset(cfg, root, loader='test_dataloader'):
    ds_cfg = copy.deepcopy(cfg[loader].dataset)
    ds_cfg.ann_file = osp.join(root, 'kinetics400_val_list_videos.txt')
    ds_cfg.data_prefix = dict(video=osp.join(root, 'videos_val'))
    ds_cfg.test_mode = True
    with DefaultScope.overwrite_default_scope('mmaction'):
        return DATASETS.build(ds_cfg)


def _decoded_frames(dataset, idx=0):
    """The frames the pipeline decodes (its steps up to the decoder's,
    whichever backend the config names)."""
    results = copy.deepcopy(dataset.get_data_info(idx))
    for t in dataset.pipeline.transforms:
        results = t(results)
        if 'imgs' in results:
            return results['imgs']
    raise AssertionError('the pipeline decodes no frames')


@pytest.fixture(scope='module')
def wide_videos(tmp_path_factory):
    """One real mp4 per class at 16:9 (320x180) and at 9:16 (180x320),
    32 frames: what the K400 configs sample from, looped."""
    roots = {}
    for name, size in (('landscape', (320, 180)), ('portrait', (180, 320))):
        roots[name] = str(tmp_path_factory.mktemp(name))
        make_motion_dataset(roots[name], num_train=1, num_val=1, size=size,
                            num_frames=32, seed=0)
    return roots


@pytest.mark.parametrize('orientation,hw', [('landscape', (224, 398)),
                                            ('portrait', (398, 224))])
def test_k400_full_frame_test_views(wide_videos, orientation, hw):
    """4 clips x 1 view of the whole frame, short side 224: 320x180 gives
    398x224 = round(224 * 16 / 9); the three-crop config's views are
    224x224 windows of the same resized frames."""
    root = wide_videos[orientation]
    full = _dataset(Config.fromfile(K400_FULL), root)
    sample = full[0]
    views = sample['inputs']
    assert tuple(views.shape) == (4, 3, 32) + hw  # clips x C x T x H x W
    assert round(224 * 320 / 180) == max(hw)
    # pixels: the decoded frames of clip 0 resized whole (bilinear, as
    # mmcv does), at the aspect ratio, nothing cut off
    frames = _decoded_frames(full)
    assert len(frames) == 4 * 32 and frames[0].shape[:2] == (
        (180, 320) if orientation == 'landscape' else (320, 180))
    expect = np.stack([cv2.resize(f, hw[::-1], interpolation=cv2.INTER_LINEAR)
                       for f in frames[:32]])  # T x H x W x C
    got = views[0].permute(1, 2, 3, 0).numpy()
    assert np.abs(got.astype(int) - expect.astype(int)).max() <= 1

    crops = _dataset(Config.fromfile(K400_CROPS), root)[0]['inputs']
    assert tuple(crops.shape) == (12, 3, 32, 224, 224)
    step = (max(hw) - 224) // 2
    # ThreeCrop's order: left / top, right / bottom, centre; crop-major
    for k, offset in enumerate((0, 2 * step, step)):
        for clip in range(4):
            window = views[clip, ..., offset:offset + 224] \
                if orientation == 'landscape' else \
                views[clip, :, :, offset:offset + 224, :]
            assert np.array_equal(crops[k * 4 + clip].numpy(),
                                  window.numpy()), (k, clip)


def test_k400_full_frame_val_and_train_views(wide_videos):
    """Validation: 1 clip x the whole frame; training: one 224x398 view of
    any video (a 16:9 frame's view size; portrait ones too)."""
    cfg = Config.fromfile(K400_FULL)
    views = _dataset(cfg, wide_videos['landscape'],
                     'val_dataloader')[0]['inputs']
    assert tuple(views.shape) == (1, 3, 32, 224, 398)
    for root in wide_videos.values():
        train = _dataset(cfg, root, 'train_dataloader')
        for i in range(2):
            assert tuple(train[i]['inputs'].shape) == (1, 3, 32, 224, 398)


def test_demo_full_frame_test_views(tmp_path):
    """The 16:9 demo clips (128x72): 4 clips x one 64x114 view; the crops
    config: 4 clips x 3 crops of 64x64."""
    make_motion_dataset(str(tmp_path), num_train=1, num_val=1,
                        size=(128, 72), num_frames=32, seed=0)
    full = _dataset(Config.fromfile(DEMO_FULL), str(tmp_path))[0]['inputs']
    assert tuple(full.shape) == (4, 3, 4, 64, round(64 * 128 / 72))
    crops = _dataset(Config.fromfile(DEMO_CROPS), str(tmp_path))[0]['inputs']
    assert tuple(crops.shape) == (12, 3, 4, 64, 64)
    train = _dataset(Config.fromfile(DEMO_FULL), str(tmp_path),
                     'train_dataloader')[0]['inputs']
    assert tuple(train.shape) == (1, 3, 4, 64, 114)


def test_token_grid_config_is_the_full_frame_one_on_12x7_tokens(tmp_path):
    """The 12 x 7 grid config: the full-frame config but for the arch (the
    tiny one with 84 tokens on a 12 x 7 grid), and the tiny ImageNet
    weights load into it through ``pretrained``, their 7 x 7 grid
    resampled."""
    import torch
    from mmaction.registry import MODELS

    from sparseformer_mm.models import VideoSparseFormer, build_classifier
    from sparseformer_mm.models.backbones.inflation import (
        inflate_image_state_dict, resample_token_grid)
    grid_cfg = Config.fromfile(K400_FULL.replace(
        'videosparseformer-tiny_', 'videosparseformer-tiny-grid12x7_'))
    full = Config.fromfile(K400_FULL)
    arch = grid_cfg.model.backbone.arch
    assert VideoSparseFormer.parse_arch(arch) == dict(
        VideoSparseFormer.parse_arch('tiny'), num_tokens=84,
        token_grid=(12, 7))
    a, b = grid_cfg.to_dict(), full.to_dict()
    a['model']['backbone'].pop('arch'), b['model']['backbone'].pop('arch')
    assert a == b
    image = build_classifier('tiny', 10)
    path = tmp_path / 'tiny_in1k.pth'
    torch.save({'state_dict': image.state_dict()}, path)
    grid_cfg.model.backbone.pretrained = str(path)
    with DefaultScope.overwrite_default_scope('mmaction'):
        video = MODELS.build(grid_cfg.model)
    video.init_weights()
    assert video.backbone.num_total_tokens == 84 * 8
    image_sd = {k[9:]: v for k, v in image.state_dict().items()
                if k.startswith('backbone.')}
    expected = inflate_image_state_dict(
        resample_token_grid(image_sd, (12, 7)), 8)
    for key in ('initial_roi.weight', 'initial_embedding.weight'):
        assert torch.equal(video.backbone.state_dict()[key], expected[key])
