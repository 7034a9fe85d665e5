"""VideoInit / VideoDecode: decord, PyAV and torchcodec give the same frames
for the same indices, on real H.264 (libx264 at 1280x720 with B-frames,
written here) and on the demo's generated mp4v clips; each frame carries its
index as a binary code, so "the same" is also "the right" frame. The K400
pipelines give identical tensors whatever the backend. torchcodec's tests
skip, with the reason, where it finds no FFmpeg libraries."""
import os.path as osp
import random

import mmaction.datasets  # noqa: F401  (SampleFrames, DecordInit, ...)
import numpy as np
import pytest
from mmaction.registry import TRANSFORMS
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

from data_helpers import REPO, make_motion_clip, write_video
from projects.benchmarks import data_benchmark as _bench
from sparseformer_mm.datasets import (CheckedVideoDataset, VideoDecode,
                                      VideoDecodeError, VideoInit,
                                      backend_problem, open_video)
from sparseformer_mm.datasets.checked_dataset import bad_samples_of

av = pytest.importorskip(
    'av', reason='PyAV is not installed (requirements/runtime.txt lists it; '
    'run make install)')
encode_h264 = _bench.encode_h264

TORCHCODEC = backend_problem('torchcodec')
OTHERS = ['pyav', pytest.param('torchcodec', marks=pytest.mark.skipif(
    TORCHCODEC is not None, reason=f'{TORCHCODEC} (optional backend, '
    'docs/decoding.md says how to install it)'))]
BITS, CELL = 8, 40  # the frame-index code: 8 squares of 40 px, top left


def coded_frames(n, width, height, start=0):
    """RGB frames with moving texture; frame ``t`` shows ``start + t`` in
    binary as white/black squares along its top edge."""
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(start, start + n):
        img = np.stack([(xx + 7 * t) % 256, (yy + 3 * t) % 256,
                        ((xx + yy) // 3 + 11 * t) % 256], -1).astype(np.uint8)
        for b in range(BITS):
            img[:CELL, b * CELL:(b + 1) * CELL] = 255 * ((t >> b) & 1)
        yield img


def read_code(img):
    """The index :func:`coded_frames` drew (the squares' centres survive
    lossy coding)."""
    cells = [img[8:CELL - 8, b * CELL + 8:(b + 1) * CELL - 8].mean()
             for b in range(BITS)]
    return sum(1 << b for b, v in enumerate(cells) if v > 128)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp('decoding')
    out = {}
    # Real H.264 as cameras and YouTube write it: High profile, 3 B-frames,
    # a keyframe every 8 frames (so decoding seeks), 1280x720.
    out['h264_720p'] = str(d / 'h264_720p.mp4')
    encode_h264(out['h264_720p'], coded_frames(32, 1280, 720),
                preset='superfast', keyint=8, bframes=3)
    # matroska: its header stores no frame count
    out['h264_mkv'] = str(d / 'h264.mkv')
    encode_h264(out['h264_mkv'], coded_frames(24, 352, 240),
                preset='superfast', keyint=8, bframes=3)
    # a phone video: display matrix says "rotate 90 degrees"
    for rot in (90, 270):
        out[f'rotated{rot}'] = str(d / f'rotated{rot}.mp4')
        encode_h264(out[f'rotated{rot}'], coded_frames(12, 352, 240),
                    preset='superfast', rotation=rot)
    # the demo's generator: cv2's mp4v (MPEG-4 part 2)
    frames, _, _ = make_motion_clip(np.random.default_rng(0), 'move_up', 64,
                                    24)
    out['mp4v'] = str(d / 'motion.mp4')
    write_video(out['mp4v'], frames)
    return out


def _data(path):
    with open(path, 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def decord_frames():
    """decord's frames per (file, indices), shared by the backends' runs
    and freed with the module."""
    return {}


def _index_sets(n, rng):
    """What pipelines ask for: all, a K400 train clip (32 x 2, looped past
    the end), four evenly spaced test clips, and random indices out of
    order with repeats."""
    return [list(range(n)), [(i * 2) % n for i in range(32)],
            [(i * n // 4 + j) % n for i in range(4) for j in range(8)],
            rng.integers(0, n, 12).tolist() + [n - 1, 0, n - 1]]


@pytest.mark.parametrize('backend', OTHERS)
@pytest.mark.parametrize('name', ['h264_720p', 'h264_mkv', 'rotated90',
                                  'rotated270', 'mp4v'])
def test_same_frames_as_decord(videos, decord_frames, name, backend):
    path = videos[name]
    data = _data(path)
    ref = open_video(data, path, 'decord')
    got = open_video(data, path, backend)
    assert got.num_frames == ref.num_frames
    assert got.fps == pytest.approx(ref.fps)
    rng = np.random.default_rng(0)
    for inds in _index_sets(ref.num_frames, rng):
        # a fresh reader per set: its seeks start from the file's start
        key = (path, tuple(inds))
        if key not in decord_frames:
            decord_frames[key] = open_video(data, path,
                                            'decord').get_frames(inds)
        a = decord_frames[key]
        b = open_video(data, path, backend).get_frames(inds)
        assert len(a) == len(b) == len(inds)
        for i, x, y in zip(inds, a, b):
            assert y.dtype == np.uint8 and y.shape == x.shape, (i, y.shape)
            assert np.array_equal(x, y), f'{name}: frame {i} differs'
        if name.startswith('h264'):
            assert [read_code(y) for y in b] == list(inds)
    if name.startswith('rotated'):  # 352x240 stored, shown as 240x352
        assert a[0].shape == (352, 240, 3)
        turns = -1 if name == 'rotated90' else 1  # back to as stored
        assert read_code(np.rot90(b[0], turns)) == inds[0]


def _with_backend(pipeline, backend):
    init = dict(type='VideoInit', backend=backend)
    swap = {'DecordInit': init, 'VideoInit': init,
            'DecordDecode': dict(type='VideoDecode')}
    return [swap.get(s['type'], s) for s in pipeline]


@pytest.mark.parametrize('backend', OTHERS)
def test_k400_pipelines_give_identical_tensors(videos, backend):
    """The K400 config's train (random sampling, crop and flip; on the
    720p video) and test (4 clips x 3 crops; on the small mkv) pipelines,
    decord against ``backend``, same seeds (the config itself decodes
    with PyAV)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'k400.py'))
    with DefaultScope.overwrite_default_scope('mmaction'):
        for key, video in (('train_pipeline', 'h264_720p'),
                           ('test_pipeline', 'h264_mkv')):
            steps = [dict(s) for s in cfg[key]]
            assert [s['type'] for s in steps][:3:2] == ['VideoInit',
                                                        'VideoDecode']
            assert steps[0]['backend'] == 'pyav'
            outs = []
            for pipe in (Compose(_with_backend(steps, 'decord')),
                         Compose(_with_backend(steps, backend))):
                np.random.seed(3)
                random.seed(3)
                outs.append(pipe(dict(filename=videos[video], label=0,
                                      start_index=0, modality='RGB')))
            a, b = (o['inputs'] for o in outs)
            assert a.shape == b.shape and a.shape[-2:] == (224, 224)
            assert bool((a == b).all()), key


def _cut_after_keyframe(src, dst, first):
    """Remux ``src`` without re-encoding so that it starts at frame
    ``first``: the packets from the keyframe before it stay (the decoder
    needs them) and an edit list hides them, as ``ffmpeg -ss T -c copy``
    does."""
    with av.open(src) as c:
        s = c.streams.video[0]
        packets = [p for p in c.demux(s) if p.size]
        pts = sorted(p.pts for p in packets)
        cut = pts[first]
        key = max(p.pts for p in packets if p.is_keyframe and p.pts <= cut)
        with av.open(dst, 'w') as out:
            o = out.add_stream_from_template(s)
            keep = False
            for p in packets:
                keep = keep or (p.is_keyframe and p.pts == key)
                if keep:
                    p.pts, p.dts = p.pts - cut, p.dts - cut
                    p.stream = o
                    out.mux(p)
    return pts.index(key)


@pytest.mark.parametrize('backend', OTHERS)
def test_edit_list_where_decord_differs(videos, tmp_path, backend):
    """A stream-copied cut (edit list): PyAV and torchcodec count the shown
    frames and return the right one for any index order. decord counts the
    hidden pre-roll too, and where it seeks, returns frames shifted back by
    the pre-roll (docs/decoding.md)."""
    path = str(tmp_path / 'cut.mp4')
    key = _cut_after_keyframe(videos['h264_720p'], path, 13)
    hidden = 13 - key
    assert hidden > 0
    data = _data(path)
    shown = 32 - 13
    r = open_video(data, path, backend)
    assert r.num_frames == shown
    inds = [shown - 1, 0, 9, 3, 9]
    assert [read_code(f) for f in r.get_frames(inds)] == [13 + i
                                                          for i in inds]
    d = open_video(data, path, 'decord')
    assert d.num_frames == shown + hidden
    assert [read_code(f) for f in d.get_frames(list(range(shown)))] == \
        list(range(13, 32))
    # where decord seeks, its frame is shifted back by the hidden ones
    d = open_video(data, path, 'decord')
    assert [read_code(f) - 13 for f in d.get_frames(inds[:4])] == [
        shown - 1 - hidden, 0, 9 - hidden, 3]


@pytest.mark.parametrize('backend', ['decord'] + OTHERS)
def test_repeated_indices_are_separate_arrays(videos, backend):
    """SampleFrames repeats indices of short videos; mmaction2's Flip works
    in place, so each position needs its own array."""
    path = videos['mp4v']
    frames = open_video(_data(path), path, backend).get_frames([5, 2, 5])
    assert np.array_equal(frames[0], frames[2])
    assert not np.shares_memory(frames[0], frames[2])


@pytest.mark.parametrize('backend', ['decord'] + OTHERS)
def test_transforms_as_a_pipeline_uses_them(videos, backend):
    init = TRANSFORMS.build(dict(type='VideoInit', backend=backend))
    res = init(dict(filename=videos['mp4v'], start_index=0))
    assert res['total_frames'] == 24 and res['avg_fps'] == pytest.approx(16)
    res['frame_inds'] = np.array([[0, 23, 7]])  # squeezed, as DecordDecode
    res = TRANSFORMS.build(dict(type='VideoDecode'))(res)
    assert res['video_reader'] is None
    assert res['img_shape'] == res['original_shape'] == (64, 64)
    assert len(res['imgs']) == 3 and res['imgs'][0].shape == (64, 64, 3)
    assert 'backend' in repr(init)


def test_torchcodec_names_and_registry():
    init = TRANSFORMS.build(dict(type='TorchCodecInit', num_threads=2))
    assert isinstance(init, VideoInit) and init.backend == 'torchcodec'
    assert init.num_threads == 2
    assert isinstance(TRANSFORMS.build(dict(type='TorchCodecDecode')),
                      VideoDecode)


@pytest.mark.skipif(TORCHCODEC is None, reason='torchcodec works here')
def test_torchcodec_missing_says_how_to_install(videos):
    init = VideoInit(backend='torchcodec')
    with pytest.raises(ImportError) as e:
        init(dict(filename=videos['mp4v']))
    msg = str(e.value)
    assert "'torchcodec'" in msg and 'apt-get install ffmpeg' in msg


@pytest.mark.parametrize('backend', ['decord'] + OTHERS)
def test_bad_files_name_the_file(videos, tmp_path, backend):
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video\n')
    truncated = tmp_path / 'half.mp4'
    truncated.write_bytes(_data(videos['mp4v'])[:3000])
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    for path in (text, truncated, empty):
        with pytest.raises(VideoDecodeError) as e:
            VideoInit(backend=backend)(dict(filename=str(path)))
        assert str(path) in str(e.value)
    r = open_video(_data(videos['mp4v']), 'clip.mp4', backend)
    with pytest.raises(IndexError, match=r'clip\.mp4: frame index 24 is out '
                       r'of range for its 24 frames'):
        r.get_frames([0, 24])


def test_wrong_settings_say_what_to_change(videos):
    with pytest.raises(ValueError, match="'ffmpeg'.*decord, pyav, "
                       'torchcodec'):
        VideoInit(backend='ffmpeg')
    decord_init = TRANSFORMS.build(dict(type='DecordInit'))
    res = decord_init(dict(filename=videos['mp4v']))
    res['frame_inds'] = np.array([0, 1])
    with pytest.raises(TypeError, match='pair VideoInit with VideoDecode'):
        VideoDecode()(res)


def test_bad_video_is_replaced_in_a_pyav_dataset(videos, tmp_path):
    """CheckedVideoDataset with the PyAV pipeline: a broken file is
    replaced by another sample and reported with PyAV's reason."""
    folder = tmp_path / 'videos'
    folder.mkdir()
    good = folder / 'good.mp4'
    good.write_bytes(_data(videos['mp4v']))
    (folder / 'broken.mp4').write_text('not a video')
    ann = tmp_path / 'list.txt'
    ann.write_text('good.mp4 0\nbroken.mp4 1\n')
    pipeline = [dict(type='VideoInit', backend='pyav'),
                dict(type='SampleFrames', clip_len=4, frame_interval=1,
                     num_clips=1),
                dict(type='VideoDecode'),
                dict(type='FormatShape', input_format='NCTHW'),
                dict(type='PackActionInputs')]
    with DefaultScope.overwrite_default_scope('mmaction'):
        ds = CheckedVideoDataset(ann_file=str(ann),
                                 data_prefix=dict(video=str(folder)),
                                 pipeline=pipeline, min_frames=4)
        data = ds[1]
    assert tuple(data['inputs'].shape) == (1, 3, 4, 64, 64)
    assert data['data_samples'].gt_label.item() == 0
    (path, reason), = bad_samples_of(data['data_samples'])
    assert path.endswith('broken.mp4') and 'PyAV cannot open it' in reason
