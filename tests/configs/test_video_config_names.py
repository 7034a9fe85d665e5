"""Every video config's name says how it samples frames
(``..._{clip_len}x{frame_interval}x{num_clips}-...``, mmaction2's naming):
the training pipeline must sample that, and validation and test the same
clip length and interval. A child config that overrides ``frame_interval``
but misses one of the three pipelines fails here. A ``-r{R}`` in the model
part of the name (``videosparseformer-tiny-r4_...``) is the token inflation,
``model.backbone.replicates``."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/videosparseformer/*.py')) +
    glob.glob(osp.join(REPO, 'configs/demo/videosparseformer-*.py')) +
    glob.glob(osp.join(REPO, 'projects/*/configs/videosparseformer-*.py')))


def _sample_frames(cfg, loader):
    steps = [t for t in cfg[loader].dataset.pipeline
             if t['type'] == 'SampleFrames']
    assert len(steps) == 1, f'{loader}: {steps}'
    return steps[0]


def test_there_are_video_configs_to_check():
    assert len(CONFIGS) >= 4, CONFIGS  # 3 variants + the demo's (3 today)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_name_matches_frame_sampling(path):
    m = re.search(r'-(\d+)x(\d+)x(\d+)-', osp.basename(path))
    assert m, f'{osp.basename(path)}: no {{frames}}x{{interval}}x{{clips}}'
    clip_len, interval, num_clips = map(int, m.groups())
    cfg = Config.fromfile(path)
    train = _sample_frames(cfg, 'train_dataloader')
    assert (train['clip_len'], train['frame_interval'],
            train['num_clips']) == (clip_len, interval, num_clips)
    for loader in ('val_dataloader', 'test_dataloader'):
        step = _sample_frames(cfg, loader)
        assert (step['clip_len'], step['frame_interval']) == (
            clip_len, interval), loader
        assert step['test_mode'] is True, loader


def _named_replicates(path):
    """R of a ``-r{R}`` at the end of the name's model part, else None."""
    m = re.search(r'-r(\d+)$', osp.basename(path).split('_')[0])
    return int(m.group(1)) if m else None


R_CONFIGS = [p for p in CONFIGS if _named_replicates(p) is not None]


def test_there_are_named_replicates_to_check():
    assert len(R_CONFIGS) >= 2, R_CONFIGS  # tiny-r4 and the demo's nano-r1


@pytest.mark.parametrize('path', R_CONFIGS, ids=osp.basename)
def test_name_matches_replicates(path):
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.replicates == _named_replicates(path)
