"""CheckedVideoDataset / SkipBadSamples: real mp4s, real bad files, real
DataLoaders (in-process and with worker processes)."""
import os
import os.path as osp

import mmaction.datasets  # noqa: F401  (registers Decord*, SampleFrames)
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, DefaultScope
from torch.utils.data import DataLoader

from data_helpers import add_bad_videos, make_motion_dataset
from sparseformer_mm.datasets import (AnnotationError, BadSampleError,
                                      CheckedVideoDataset, SkipBadSamples)
from sparseformer_mm.datasets.checked_dataset import (bad_samples_of,
                                                      replacement_index)

PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=1, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]


@pytest.fixture(autouse=True)
def _mmaction_scope():
    # the pipeline's transforms live in mmaction2's registry, as in configs
    with DefaultScope.overwrite_default_scope('mmaction'):
        yield


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('motion'))
    make_motion_dataset(root, num_train=2, num_val=0, size=32, num_frames=8)
    bad = add_bad_videos(root, 'videos_train',
                         osp.join(root, 'kinetics400_train_list_videos.txt'))
    return root, bad


def _dataset(root, **kwargs):
    return CheckedVideoDataset(
        ann_file=osp.join(root, 'kinetics400_train_list_videos.txt'),
        data_prefix=dict(video=osp.join(root, 'videos_train')),
        pipeline=PIPELINE, min_frames=4, **kwargs)


def test_each_kind_of_bad_video_is_replaced_with_its_reason(videos):
    root, bad = videos
    ds = _dataset(root)
    assert len(ds) == 8 + len(bad)
    by_path = {ds.get_data_info(i)['filename']: i for i in range(len(ds))}
    expected = {'missing': 'file not found', 'empty': 'empty file (0 bytes)',
                'text': 'RuntimeError', 'truncated': 'RuntimeError',
                'short': '2 frame(s), fewer than min_frames=4'}
    for kind, path in bad.items():
        data = ds[by_path[path]]
        assert tuple(data['inputs'].shape) == (1, 3, 4, 32, 32)
        # the first entry is this file; a replacement that is bad too
        # (another of the 5 here) is listed after it
        chain = bad_samples_of(data['data_samples'])
        (got_path, reason) = chain[0]
        assert got_path == path and expected[kind] in reason, (kind, reason)
        assert {p for p, _ in chain} <= set(bad.values())
        # the replacement is deterministic: same index, same sample
        again = ds[by_path[path]]
        assert again['data_samples'].gt_label == data['data_samples'].gt_label
    good = ds[0]
    assert bad_samples_of(good['data_samples']) == []


def test_replacement_index_depends_only_on_its_arguments():
    picks = [replacement_index(3, a, 10, seed=0) for a in range(20)]
    assert picks == [replacement_index(3, a, 10, seed=0) for a in range(20)]
    assert 3 not in picks and all(0 <= p < 10 for p in picks)
    assert picks != [replacement_index(3, a, 10, seed=1) for a in range(20)]


@pytest.mark.parametrize('num_workers', [0, 2])
def test_dataloader_reports_every_bad_file_once_per_epoch(videos,
                                                          num_workers):
    root, bad = videos
    ds = _dataset(root)
    loader = DataLoader(ds, batch_size=4, num_workers=num_workers,
                        collate_fn=pseudo_collate, shuffle=False)
    seen, n = {}, 0
    for batch in loader:
        n += len(batch['inputs'])
        for sample in batch['data_samples']:
            for path, reason in bad_samples_of(sample):
                seen[path] = reason
    assert n == len(ds)
    assert set(seen) == set(bad.values())


def test_without_skipping_the_error_surfaces(videos):
    root, bad = videos
    ds = _dataset(root, skip_bad_videos=False)
    i = [ds.get_data_info(k)['filename'] for k in range(len(ds))].index(
        bad['text'])
    with pytest.raises(RuntimeError, match='Error reading'):
        ds[i]


def test_all_replacements_failing_is_an_error(tmp_path):
    (tmp_path / 'a.mp4').write_bytes(b'')
    (tmp_path / 'b.mp4').write_text('not a video')
    ann = tmp_path / 'list.txt'
    ann.write_text('a.mp4 0\nb.mp4 1\n')
    ds = CheckedVideoDataset(str(ann), PIPELINE, max_retries=3,
                             data_prefix=dict(video=str(tmp_path)))
    with pytest.raises(BadSampleError, match=r'(?s)a\.mp4: empty file.*'
                       r'b\.mp4: RuntimeError'):
        ds[0]


def test_generic_wrapper_for_any_dataset(videos):
    root, bad = videos
    wrapped = DATASETS.build(dict(
        type='SkipBadSamples', dataset=dict(
            type='VideoDataset', _scope_='mmaction',
            ann_file=osp.join(root, 'kinetics400_train_list_videos.txt'),
            data_prefix=dict(video=osp.join(root, 'videos_train')),
            pipeline=PIPELINE)))
    assert isinstance(wrapped, SkipBadSamples) and len(wrapped) == 13
    names = [wrapped.get_data_info(k)['filename'] for k in range(13)]
    data = wrapped[names.index(bad['empty'])]
    assert bad_samples_of(data['data_samples']) == [
        (bad['empty'], 'empty file (0 bytes)')]


@pytest.mark.parametrize('line, message', [
    ('a.mp4', 'has no label; write "path label"'),
    ('a.mp4 running', "label ['running'] is not an integer"),
    ('my clip.mp4 3', 'has 3 fields, expected "path label". If the path '
                      'contains spaces'),
    ('a.mp4\t3', 'exactly one space'),
    ('a.mp4  3', 'exactly one space'),
    ('a.mp4 -2', 'negative label'),
])
def test_malformed_lines_fail_at_build_with_file_and_line(tmp_path, line,
                                                          message):
    ann = tmp_path / 'list.txt'
    ann.write_text(f'ok.mp4 0\n\n{line}\nok2.mp4 1\n')
    with pytest.raises(AnnotationError) as info:
        CheckedVideoDataset(str(ann), PIPELINE)
    assert f'{ann}:3: ' in str(info.value)
    assert message in str(info.value)


def test_label_range_and_all_problems_reported_together(tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text('a.mp4 0\nb.mp4 4\nc.mp4 x\nd.mp4 3\n')
    with pytest.raises(AnnotationError) as info:
        CheckedVideoDataset(str(ann), PIPELINE)
    assert '1 malformed' in str(info.value) and f'{ann}:3:' in str(info.value)
    ann.write_text('a.mp4 0\nb.mp4 4\nd.mp4 3\n')
    ds = CheckedVideoDataset(str(ann), PIPELINE)  # no num_classes: loads
    with pytest.raises(AnnotationError,
                       match=f'{ann}:2: label 4 is out of range for '
                             'num_classes=4'):
        ds.check_labels(4)
    with pytest.raises(AnnotationError, match=f'{ann}:2: label 4'):
        CheckedVideoDataset(str(ann), PIPELINE, num_classes=4)
    unlabeled = tmp_path / 'infer.txt'
    unlabeled.write_text('a.mp4\n')
    ds = CheckedVideoDataset(str(unlabeled), PIPELINE, allow_unlabeled=True)
    assert ds.get_data_info(0)['label'] == -1


def test_missing_list_file_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='build_file_list.py'):
        CheckedVideoDataset(str(tmp_path / 'nope.txt'), PIPELINE)


def test_shipped_video_configs_use_the_checked_dataset():
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    names = ['configs/k400.py',
             'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py']
    names += [osp.join('configs/videosparseformer', f) for f in
              os.listdir(osp.join(repo, 'configs/videosparseformer'))
              if f.endswith('.py')]
    for name in names:
        cfg = Config.fromfile(osp.join(repo, name))
        hooks = [h['type'] for h in cfg.custom_hooks]
        assert 'DataCheckHook' in hooks, name
        assert cfg.optim_wrapper.type == 'AmpOrFp32OptimWrapper', name
        for split in ('train', 'val', 'test'):
            ds = cfg[f'{split}_dataloader'].dataset
            assert ds.type == 'CheckedVideoDataset', (name, split)
            clip = [t for t in ds.pipeline if t['type'] == 'SampleFrames']
            assert ds.min_frames == clip[0]['clip_len'], (name, split)


def test_wrapper_in_an_mmpretrain_image_config(tmp_path):
    from data_helpers import make_imagenet_like
    root = make_imagenet_like(str(tmp_path / 'imnet'), per_class=1, size=32)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ds = DATASETS.build(dict(
            type='SkipBadSamples', dataset=dict(
                type='CustomDataset', data_root=root,
                ann_file='meta/train.txt', data_prefix='train',
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackInputs')])))
        bad = ds.get_data_info(1)['img_path']
        with open(bad, 'w') as f:
            f.write('not an image')
        data = ds[1]
    (path, reason), = bad_samples_of(data['data_samples'])
    assert path == bad and '12 bytes' in reason
    assert tuple(data['inputs'].shape) == (3, 32, 32)


def test_min_frames_is_what_the_clip_samples_not_its_span(tmp_path):
    """With ``min_frames=clip_len`` (as the configs set it), a video with
    at least ``clip_len`` frames but fewer than ``clip_len x
    frame_interval`` is kept and looped by SampleFrames, as in mmaction2;
    one with fewer than ``clip_len`` frames is bad."""
    import numpy as np

    from data_helpers import make_motion_clip, write_video
    frames, _, _ = make_motion_clip(np.random.default_rng(0), 'move_up', 32,
                                    6)
    write_video(str(tmp_path / 'six.mp4'), frames)  # 6 < 4 x 2 frames
    write_video(str(tmp_path / 'three.mp4'), frames[:3])
    ann = tmp_path / 'list.txt'
    ann.write_text('six.mp4 0\nthree.mp4 1\n')
    pipeline = [dict(t) for t in PIPELINE]
    pipeline[1] = dict(type='SampleFrames', clip_len=4, frame_interval=2,
                       num_clips=1, test_mode=True)
    ds = CheckedVideoDataset(str(ann), pipeline, min_frames=4,
                             data_prefix=dict(video=str(tmp_path)))
    six = ds[0]
    assert bad_samples_of(six['data_samples']) == []
    assert tuple(six['inputs'].shape) == (1, 3, 4, 32, 32)
    replaced = ds[1]
    assert bad_samples_of(replaced['data_samples']) == [
        (str(tmp_path / 'three.mp4'), '3 frame(s), fewer than min_frames=4')]
    # the 4 sampled frames of the 6-frame video wrap around: frames 0, 2, 4
    # and then 0 again (mmaction2's looping)
    assert torch.equal(six['inputs'][0, :, 3], six['inputs'][0, :, 0])
    assert not torch.equal(six['inputs'][0, :, 1], six['inputs'][0, :, 0])
