"""Bad inputs get a message naming the file / key / value and what to
change, not a traceback from deep inside (issue 17, items 6-8, 12)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from sparseformer_mm.datasets import AnnotationError
from sparseformer_mm.datasets.checked_dataset import (path_problem,
                                                      read_list_lines)
from sparseformer_mm.engine.hooks.batch_shape_hook import padding_factor
from sparseformer_mm.models.backbones.video_sparseformer import \
    VideoSparseFormer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VIDEO_CFG = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'
IMAGE_CFG = 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'
NANO = dict(num_tokens=16, focus_dims=64, cortex_dims=128, cortex_depth=2,
            num_points=16)


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO, text=True,
                          capture_output=True, timeout=300)


def test_list_encodings(tmp_path):
    bom = tmp_path / 'bom.txt'
    bom.write_bytes(b'\xef\xbb\xbfa.mp4 0\nb.mp4 1\n')
    assert read_list_lines(str(bom)) == [(1, 'a.mp4 0'), (2, 'b.mp4 1')]
    latin = tmp_path / 'latin.txt'
    latin.write_bytes('a.mp4 0\ncaf\xe9.mp4 1\n'.encode('latin-1'))
    with pytest.raises(AnnotationError, match=r'latin.txt:2: not UTF-8'):
        read_list_lines(str(latin))
    utf16 = tmp_path / 'utf16.txt'
    utf16.write_text('a.mp4 0\n', encoding='utf-16')
    with pytest.raises(AnnotationError, match='UTF-16'):
        read_list_lines(str(utf16))


def test_path_problems(tmp_path):
    (tmp_path / 'x.mp4').mkdir()
    os.symlink(tmp_path / 'loop', tmp_path / 'loop')
    assert path_problem(str(tmp_path / 'x.mp4')) == 'is a directory'
    assert path_problem(str(tmp_path / 'loop')) == 'is a symlink loop'
    assert path_problem(str(tmp_path / 'none.mp4')) == 'file not found'


def test_model_settings():
    with pytest.raises(ValueError, match='replicates must be a positive '
                       'integer.*2.5'):
        VideoSparseFormer(arch=NANO, num_heads=4, replicates=2.5)
    with pytest.raises(ValueError, match='num_points must be a positive'):
        VideoSparseFormer(arch=dict(NANO, num_points=0), num_heads=4)
    with pytest.raises(ValueError, match='num_tokens must be a positive'):
        VideoSparseFormer(arch=dict(NANO, num_tokens=0), num_heads=4)


def test_padding_factor():
    small, big = torch.zeros(3, 4, 64, 64), torch.zeros(3, 4, 1080, 1920)
    assert padding_factor([small, small]) == 1
    assert padding_factor([small, big]) == 1080 * 1920 / 64 ** 2


def test_check_videos_agrees_with_training(tmp_path):
    import kinetics_tools as kt
    from data_helpers import make_motion_clip, write_video
    import numpy as np
    frames, _, _ = make_motion_clip(np.random.default_rng(0), 'move_up', 32,
                                    6)
    write_video(str(tmp_path / 'short.mp4'), frames)
    (tmp_path / 'dir.mp4').mkdir()
    (tmp_path / 'list.txt').write_bytes(
        b'\xef\xbb\xbfshort.mp4 0\ndir.mp4 1\n')
    res = kt.check_videos(str(tmp_path / 'list.txt'), str(tmp_path),
                          progress=False, min_frames=8)
    assert dict(res['bad']) == {
        'short.mp4': '6 frame(s), fewer than min_frames=8',
        'dir.mp4': 'is a directory'}
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='lists no videos'):
        kt.check_videos(str(tmp_path / 'empty.txt'), str(tmp_path))


def test_build_file_list_empty_class(tmp_path):
    import kinetics_tools as kt
    for c in ('a', 'b', 'c'):
        (tmp_path / 'videos_train' / c).mkdir(parents=True)
    for c in ('a', 'c'):
        (tmp_path / 'videos_train' / c / 'v.mp4').write_bytes(b'x')
    with pytest.raises(ValueError, match=r"\['b'\].*--skip-empty-classes"):
        kt.build_file_list(str(tmp_path), splits=['train'])
    res = kt.build_file_list(str(tmp_path), splits=['train'],
                             skip_empty_classes=True)
    assert res['classes'] == ['a', 'c'] and res['skipped'] == ['b']


@pytest.mark.slow
def test_tools_reject_bad_values(tmp_path):
    txt = tmp_path / 'notes.txt'
    txt.write_text('not a checkpoint\n')
    cases = [
        (('tools/model_converters/inflate_to_video.py', str(txt),
          str(tmp_path / 'o.pth'), '--replicates', '0'),
         '--replicates must be >= 1'),
        (('tools/model_converters/sparseformer_to_mm.py', str(txt),
          str(txt)), 'is the input'),
        (('tools/analysis_tools/get_flops.py', IMAGE_CFG, '--shape', '0',
          '0'), '--shape sizes must be positive'),
        (('tools/visualizations/vis_rois.py', IMAGE_CFG, str(txt), str(txt),
          '--out', str(tmp_path), '--scale', '0'),
         '--scale must be a positive integer'),
        (('tools/infer.py', VIDEO_CFG, str(txt), str(txt), '--top-k', '0'),
         '--top-k must be >= 1'),
        (('tools/test.py', VIDEO_CFG, str(txt), '--work-dir', str(tmp_path),
          '--cfg-options', 'test_dataloader.num_workers=0'),
         'is not a checkpoint'),
    ]
    for args, msg in cases:
        res = _run(*args)
        assert res.returncode != 0 and msg in res.stderr, (
            args, res.stderr[-1500:])
    assert txt.read_text() == 'not a checkpoint\n'  # not overwritten


def test_unknown_cfg_option_warns(capsys):
    from tools import cfg_check
    cfg_check.check_cfg_options([VIDEO_CFG, '--cfg-options',
                                 'optim_wraper.optimizer.lr=1e-5',
                                 'model.backbone.replicates=4'])
    err = capsys.readouterr().err
    assert "no top-level key 'optim_wraper'" in err
    assert "Did you mean 'optim_wrapper'?" in err
    assert 'model.backbone' not in err
    with pytest.raises(SystemExit, match="got 'foo' without \"=\""):
        cfg_check.check_cfg_options([VIDEO_CFG, '--cfg-options', 'foo'])
