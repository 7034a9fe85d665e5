"""Kinetics data tools on real (small) video files: lists, resize, check."""
import importlib
import os
import os.path as osp
import subprocess
import sys

import decord
import numpy as np
import pytest

import kinetics_tools as kt
from data_helpers import REPO, TOOLS, write_video

KINETICS = osp.join(TOOLS, 'data', 'kinetics')


def _video(path, width=64, height=48, num_frames=10, seed=0):
    """A real mp4v file: a bright square moving right over noise."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = np.repeat(
        rng.integers(0, 120, (1, height, width, 3), dtype=np.uint8),
        num_frames, axis=0)
    for t in range(num_frames):
        frames[t, 4:12, 2 + t:10 + t] = 255
    write_video(path, frames, fps=10)
    return path


def _touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'not decoded by build_file_list')


def _load_tool(name):
    return importlib.import_module(name)


# ---------------------------------------------------------------------------
# build_file_list
# ---------------------------------------------------------------------------
def test_build_file_list_labels_from_sorted_train_classes(tmp_path):
    root = str(tmp_path)
    for rel in ('videos_train/zumba/b.mp4', 'videos_train/zumba/a.webm',
                'videos_train/archery/x.mkv', 'videos_train/bowling/y.avi',
                'videos_val/zumba/v.mp4', 'videos_val/archery/w.MP4'):
        _touch(osp.join(root, rel))
    # Not videos, or unfinished resize outputs: never listed.
    _touch(osp.join(root, 'videos_train/zumba/a.boxes.json'))
    _touch(osp.join(root, 'videos_train/zumba/.c.part.mp4'))
    os.makedirs(osp.join(root, 'videos_train/empty_class'))

    # An empty class folder would shift every later label: an error,
    # unless left out on purpose.
    with pytest.raises(ValueError, match='empty_class'):
        kt.build_file_list(root)
    res = kt.build_file_list(root, skip_empty_classes=True)
    assert res['skipped'] == ['empty_class']
    assert res['classes'] == ['archery', 'bowling', 'zumba']
    assert res['counts'] == {'train': 4, 'val': 2}
    with open(osp.join(root, 'kinetics400_train_list_videos.txt')) as f:
        assert f.read() == ('archery/x.mkv 0\nbowling/y.avi 1\n'
                            'zumba/a.webm 2\nzumba/b.mp4 2\n')
    # val lacks "bowling" but keeps the train label map (zumba = 2).
    with open(osp.join(root, 'kinetics400_val_list_videos.txt')) as f:
        assert f.read() == 'archery/w.MP4 0\nzumba/v.mp4 2\n'
    with open(osp.join(root, 'classes.txt')) as f:
        assert f.read() == 'archery\nbowling\nzumba\n'

    out = str(tmp_path / 'lists')
    res = kt.build_file_list(root, out_dir=out, ann_prefix='k10',
                             skip_empty_classes=True)
    assert sorted(os.listdir(out)) == [
        'classes.txt', 'k10_train_list_videos.txt', 'k10_val_list_videos.txt']


def test_build_file_list_errors_are_explicit(tmp_path):
    root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match='videos_train'):
        kt.build_file_list(root)
    os.makedirs(osp.join(root, 'videos_train', 'cls'))
    with pytest.raises(ValueError, match=r'videos_train/<class>/\*\.mp4'):
        kt.build_file_list(root)
    _touch(osp.join(root, 'videos_train', 'loose.mp4'))
    with pytest.raises(ValueError, match='one sub-folder per class'):
        kt.build_file_list(root)
    _touch(osp.join(root, 'videos_train', 'cls', 'a.mp4'))
    _touch(osp.join(root, 'videos_val', 'cls', 'b.mp4'))
    _touch(osp.join(root, 'videos_val', 'unseen', 'c.mp4'))
    _touch(osp.join(root, 'videos_val', 'also new', 'd.mp4'))
    with pytest.raises(ValueError, match=r"\['also new', 'unseen'\]"):
        kt.build_file_list(root)
    _touch(osp.join(root, 'videos_train', 'cls', 'with space.mp4'))
    with pytest.raises(ValueError, match='whitespace'):
        kt.build_file_list(root, splits=['train'])
    assert not osp.exists(osp.join(root, 'classes.txt'))  # nothing written


def test_build_file_list_cli_reports_a_bad_root(tmp_path):
    # The one real subprocess: `python tools/...` finds kinetics_tools in
    # the script's own folder.
    missing = str(tmp_path / 'nowhere')
    res = subprocess.run(
        [sys.executable, osp.join(KINETICS, 'build_file_list.py'), missing],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 1
    assert 'error:' in res.stderr
    assert osp.join(missing, 'videos_train') in res.stderr
    assert 'Traceback' not in res.stderr


@pytest.mark.parametrize('name', ['build_file_list', 'resize_videos',
                                  'check_videos'])
def test_tools_have_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        _load_tool(name).main(['--help'])
    assert exc.value.code == 0
    assert 'usage:' in capsys.readouterr().out


# ---------------------------------------------------------------------------
# resize_videos
# ---------------------------------------------------------------------------
def test_scaled_size_keeps_aspect_with_even_sides():
    assert kt.scaled_size(1920, 1080, 320) == (568, 320)
    assert kt.scaled_size(720, 1280, 320) == (320, 568)
    assert kt.scaled_size(64, 48, 48) == (64, 48)
    assert kt.scaled_size(80, 64, 48) == (60, 48)
    with pytest.raises(ValueError):
        kt.scaled_size(0, 10, 320)


def test_resize_videos_cv2_fallback_and_rerun(tmp_path, monkeypatch):
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    _video(osp.join(src, 'a', 'land.mp4'), width=80, height=64)
    _video(osp.join(src, 'b', 'port.avi'), width=48, height=96)
    with open(osp.join(src, 'b', 'broken.mp4'), 'wb') as f:
        f.write(os.urandom(2000))
    # A half-written output of an interrupted run must not count as done.
    os.makedirs(osp.join(dst, 'a'))
    with open(osp.join(dst, 'a', '.land.part.mp4'), 'wb') as f:
        f.write(b'partial')

    monkeypatch.setattr(kt.shutil, 'which', lambda name: None)  # no ffmpeg
    # 40, not 48: decord 0.6.0 cannot return frames 48 px wide (the
    # portrait source is that wide; cv2 decodes it for the re-encode).
    res = kt.resize_videos(src, dst, short_side=40, num_workers=2,
                           progress=False)
    assert res['backend'] == 'cv2'
    assert sorted(res['resized']) == ['a/land.mp4', 'b/port.avi']
    assert res['skipped'] == []
    assert [rel for rel, _ in res['failed']] == ['b/broken.mp4']
    assert res['failed'][0][1]  # an error message

    for rel, size in (('a/land.mp4', (40, 50)), ('b/port.mp4', (80, 40))):
        vr = decord.VideoReader(osp.join(dst, rel))
        assert len(vr) == 10
        assert vr[0].shape == size + (3, )
        assert vr.get_avg_fps() == pytest.approx(10)
    # The moving square survives resizing: bright top-left in frame 0.
    frame = decord.VideoReader(osp.join(dst, 'a/land.mp4'))[0].asnumpy()
    assert frame[3:7, 2:6].mean() > 200
    # Nothing half-written is left behind; the failure has no output.
    leftovers = [f for _, _, files in os.walk(dst) for f in files
                 if f.startswith('.') or f.startswith('broken')]
    assert leftovers == []

    again = kt.resize_videos(src, dst, short_side=40, num_workers=2,
                             progress=False)
    assert sorted(again['skipped']) == ['a/land.mp4', 'b/port.avi']
    assert again['resized'] == []
    assert [rel for rel, _ in again['failed']] == ['b/broken.mp4']


def _av_video(path, codec='mpeg4', width=64, height=48, num_frames=10,
              pix_fmt='yuv420p'):
    """A real video written with PyAV (any container and codec its FFmpeg
    has: mkv, AV1, GIF), showing the same moving square as :func:`_video`."""
    av = pytest.importorskip('av', reason='PyAV is not installed (it is in '
                             'requirements/runtime.txt)')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with av.open(path, 'w') as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for t in range(num_frames):
            img = np.full((height, width, 3), 60, np.uint8)
            img[4:12, 2 + t:10 + t] = 255
            for packet in stream.encode(
                    av.VideoFrame.from_ndarray(img, format='rgb24')):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _files(folder):
    return sorted(osp.relpath(osp.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)


def test_resize_refuses_two_inputs_for_one_output(tmp_path, capsys):
    """cv2 writes every output as .mp4: x.mkv and x.mp4 would both become
    x.mp4 and one video would be lost; the tool names them and writes
    nothing."""
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    _av_video(osp.join(src, 'cls', 'x.mkv'))
    _video(osp.join(src, 'cls', 'x.mp4'))
    _video(osp.join(src, 'cls', 'y.mp4'))
    tool = _load_tool('resize_videos')
    argv = [src, dst, '--short-side', '32', '--backend', 'cv2',
            '--num-workers', '1']
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    msg = str(exc.value.code)
    assert 'cls/x.mkv, cls/x.mp4 -> cls/x.mp4' in msg, msg
    assert 'Nothing was written' in msg
    assert not osp.exists(dst)
    # once the duplicate is gone, every input is written, and the count
    # printed is the number of files written
    os.remove(osp.join(src, 'cls', 'x.mp4'))
    tool.main(argv)
    assert 'resize (cv2): 2 resized, 0 skipped, 0 failed' in \
        capsys.readouterr().out
    assert _files(dst) == ['cls/x.mp4', 'cls/y.mp4']
    assert len(decord.VideoReader(osp.join(dst, 'cls/x.mp4'))) == 10


def test_resize_into_a_folder_inside_the_source(tmp_path, capsys):
    """``SRC SRC/small``: the outputs are never read as inputs, so a
    restart skips everything instead of resizing small/small/..."""
    src = str(tmp_path / 'src')
    dst = osp.join(src, 'small')
    _video(osp.join(src, 'a', 'one.mp4'), width=80, height=64)
    _video(osp.join(src, 'b', 'two.avi'))
    tool = _load_tool('resize_videos')
    argv = [src, dst, '--short-side', '32', '--backend', 'cv2',
            '--num-workers', '1']
    tool.main(argv)
    assert '2 resized, 0 skipped' in capsys.readouterr().out
    tool.main(argv)
    assert '0 resized, 2 skipped' in capsys.readouterr().out
    assert _files(dst) == ['a/one.mp4', 'b/two.mp4']
    # the source itself, or a folder holding it, is refused
    for bad in (src, str(tmp_path)):
        with pytest.raises(SystemExit, match='outside the source'):
            tool.main([src, bad, '--backend', 'cv2'])


def test_resize_videos_ffmpeg_backend_plumbing(tmp_path, monkeypatch):
    """The ffmpeg path, with a stand-in ``ffmpeg`` (none is installed): the
    command is built right, outputs are renamed into place, failures keep
    ffmpeg's message and leave no temporary file."""
    src, dst = str(tmp_path / 'src'), str(tmp_path / 'dst')
    # cv2 cannot write webm; the stand-in ffmpeg only copies bytes anyway.
    os.rename(_video(osp.join(src, 'c', 'ok.mp4')),
              osp.join(src, 'c', 'ok.webm'))
    _video(osp.join(src, 'c', 'bad.mp4'))
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = bin_dir / 'ffmpeg'
    fake.write_text(
        f'#!{sys.executable}\n'
        'import shutil, sys\n'
        'a = sys.argv\n'
        "src, dst = a[a.index('-i') + 1], a[-1]\n"
        "vf = a[a.index('-vf') + 1]\n"
        "assert vf.startswith(\"scale='if(gt(iw,ih),-2,32)'\"), vf\n"
        "if 'bad' in src:\n"
        "    open(dst, 'w').write('half')\n"
        "    sys.exit('bad.mp4: Invalid data found when processing input')\n"
        'shutil.copy(src, dst)\n')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')

    res = kt.resize_videos(src, dst, short_side=32, num_workers=1,
                           backend='auto', progress=False)
    assert res['backend'] == 'ffmpeg'
    assert res['resized'] == ['c/ok.webm']  # the extension is kept
    assert osp.isfile(osp.join(dst, 'c', 'ok.webm'))
    assert res['failed'][0][0] == 'c/bad.mp4'
    assert 'Invalid data found' in res['failed'][0][1]
    assert sorted(os.listdir(osp.join(dst, 'c'))) == ['ok.webm']
    cmd = kt.ffmpeg_resize_cmd('in.mp4', 'out.mp4', 320)
    assert cmd[0] == 'ffmpeg' and cmd[-1] == 'out.mp4'
    assert "scale='if(gt(iw,ih),-2,320)':'if(gt(iw,ih),320,-2)'" in cmd


def test_resize_backend_and_input_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(kt.shutil, 'which', lambda name: None)
    with pytest.raises(FileNotFoundError, match='ffmpeg'):
        kt.resolve_backend('ffmpeg')
    with pytest.raises(ValueError, match='unknown backend'):
        kt.resolve_backend('gstreamer')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        kt.resize_videos(str(tmp_path / 'none'), str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='no videos'):
        kt.resize_videos(str(tmp_path), str(tmp_path / 'out'))


@pytest.mark.slow
# ---------------------------------------------------------------------------
# check_videos
# ---------------------------------------------------------------------------
def test_check_videos_flags_corrupt_files(tmp_path, capsys):
    prefix = str(tmp_path / 'videos_val')
    good = _video(osp.join(prefix, 'cls', 'good.mp4'))
    _video(osp.join(prefix, 'cls', 'good2.mp4'), num_frames=3)
    with open(osp.join(prefix, 'cls', 'garbage.mp4'), 'wb') as f:
        f.write(os.urandom(4096))
    with open(good, 'rb') as f:  # a download cut short
        head = f.read(os.path.getsize(good) // 2)
    with open(osp.join(prefix, 'cls', 'truncated.mp4'), 'wb') as f:
        f.write(head)
    ann = str(tmp_path / 'val_list.txt')
    with open(ann, 'w') as f:
        f.write('cls/good.mp4 0\ncls/garbage.mp4 0\n\ncls/good2.mp4 1\n'
                'cls/truncated.mp4 1\ncls/missing.mp4 1\n')

    assert kt.check_video(good) is None
    res = kt.check_videos(ann, prefix, num_workers=2, progress=False)
    assert res['ok'] == ['cls/good.mp4', 'cls/good2.mp4']
    bad = dict(res['bad'])
    assert list(bad) == ['cls/garbage.mp4', 'cls/truncated.mp4',
                         'cls/missing.mp4']
    assert bad['cls/missing.mp4'] == 'file not found'
    assert 'bytes' in bad['cls/garbage.mp4']

    tool = _load_tool('check_videos')
    out = str(tmp_path / 'report' / 'bad.txt')
    with pytest.raises(SystemExit) as exc:
        tool.main([ann, '--data-prefix', prefix, '--num-workers', '1',
                   '--out', out])
    assert exc.value.code == 1
    printed = capsys.readouterr().out
    assert '2 ok, 3 bad' in printed and 'cls/garbage.mp4' in printed
    with open(out) as f:
        assert f.read().split() == list(bad)

    with open(ann, 'w') as f:
        f.write('cls/good.mp4 0\ncls/good2.mp4 1\n')
    tool.main([ann, '--data-prefix', prefix, '--num-workers', '1',
               '--out', out])  # no exit (the pool ran above)
    with open(out) as f:
        assert f.read() == ''
    with pytest.raises(SystemExit, match='does not exist'):
        tool.main([ann, '--data-prefix', str(tmp_path / 'nope')])


REAL = osp.join(osp.dirname(REPO), 'shared', 'data', 'real')
K400_CONFIG = osp.join(
    REPO, 'configs', 'videosparseformer',
    'videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py')


@pytest.fixture(scope='module')
def pyav_only(tmp_path_factory):
    """An AV1 mp4 and a GIF (PyAV reads both, decord neither), a real
    Kinetics clip where one is found, a file of random bytes, and their
    list."""
    prefix = tmp_path_factory.mktemp('pyav_only')
    # SVT-AV1 wants at least 64x64
    _av_video(str(prefix / 'cls' / 'av1.mp4'), 'libsvtav1', 64, 64)
    _av_video(str(prefix / 'cls' / 'anim.gif'), 'gif', pix_fmt='rgb8')
    (prefix / 'cls' / 'noise.mp4').write_bytes(os.urandom(4096))
    names = ['cls/av1.mp4', 'cls/anim.gif', 'cls/noise.mp4']
    real = osp.join(REAL, 'kinetics400_arm-wrestling.mp4')
    if osp.isfile(real):
        os.symlink(real, prefix / 'cls' / 'real.mp4')
        names.append('cls/real.mp4')
    ann = prefix / 'list.txt'
    ann.write_text(''.join(f'{n} 0\n' for n in names))
    return str(ann), str(prefix)


def _check(args, capsys):
    tool = _load_tool('check_videos')
    with pytest.raises(SystemExit) as exc:
        tool.main(args + ['--num-workers', '1'])
    assert exc.value.code == 1  # noise.mp4 is bad in every case
    return capsys.readouterr().out


def test_check_videos_decodes_as_the_config_does(pyav_only, capsys,
                                                 tmp_path):
    ann, prefix = pyav_only
    real = 1 if 'real.mp4' in open(ann).read() else 0
    # the default is the K400 configs' decoder, PyAV: AV1 and GIF are fine
    out = _check([ann, '--data-prefix', prefix], capsys)
    assert f'check (pyav): {2 + real} ok, 1 bad' in out, out
    assert 'noise.mp4: VideoDecodeError: PyAV cannot open it' in out
    assert kt.config_video_backend(K400_CONFIG) == kt.DEFAULT_CHECK_BACKEND
    out = _check([ann, '--data-prefix', prefix, '--config', K400_CONFIG],
                 capsys)
    assert f'check (pyav): {2 + real} ok, 1 bad' in out, out
    # a config decoding with decord (mmaction2's DecordInit): so does the
    # check, and it calls AV1 and GIF bad as training would
    decord_cfg = tmp_path / 'decord.py'
    decord_cfg.write_text(''.join(
        f"{split}_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='DecordInit'), dict(type='DecordDecode')]))\n"
        for split in ('train', 'val', 'test')))
    for args in (['--backend', 'decord'], ['--config', str(decord_cfg)]):
        out = _check([ann, '--data-prefix', prefix] + args, capsys)
        assert f'check (decord): {real} ok, 3 bad' in out, out
        assert 'cls/av1.mp4: VideoDecodeError: decord cannot open it' in out
    # a config whose pipelines disagree must be told which one to use
    mixed = tmp_path / 'mixed.py'
    mixed.write_text(
        f'_base_ = [{K400_CONFIG!r}]\n'
        "val_dataloader = dict(dataset=dict(pipeline=[dict(type='DecordInit'"
        ')]))\n')
    with pytest.raises(ValueError, match='different backends'):
        kt.config_video_backend(str(mixed))
    if not real:
        pytest.skip(f'the real-clip part: no {REAL}/kinetics400_arm-'
                    'wrestling.mp4 (the shared real clips are absent)')
