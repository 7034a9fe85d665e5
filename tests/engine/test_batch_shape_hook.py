"""BatchPaddingHook: any zero-padding of a batch changes the padded
samples' scores (measured here with the demo's model, through its data
preprocessor), so the hook warns on any padded batch, once per run and
mode, naming the padded files."""
import os.path as osp

import pytest
import torch
from mmaction.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import sparseformer_mm  # noqa: F401  (registries)
from data_helpers import MOTION_CLASSES, REPO, make_motion_dataset

DEMO_FULL = osp.join(
    REPO, 'projects/full_frame_views/configs/'
    'videosparseformer-nano_1xb16-4x8x1-6e_motion-wide_full-frame.py')


@pytest.fixture(scope='module')
def near(tmp_path_factory):
    """A list alternating 64x64 clips and 68x64 ones: a batch of two is
    padded to 64x68, 1.06x the smaller one's area (far below the 4x the
    hook used to need)."""
    root = tmp_path_factory.mktemp('near')
    for name, size in (('square', 64), ('near', (68, 64))):
        make_motion_dataset(str(root / name), num_train=1, num_val=1,
                            size=size, num_frames=32, seed=0)
    lines = [f'{name}/videos_val/{cls}/00000.mp4 {label}'
             for label, cls in enumerate(MOTION_CLASSES)
             for name in ('square', 'near')]
    (root / 'list.txt').write_text('\n'.join(lines) + '\n')
    return root


def _cfg(root):
    cfg = Config.fromfile(DEMO_FULL)
    cfg.test_dataloader.dataset.update(ann_file=str(root / 'list.txt'),
                                       data_prefix=dict(video=str(root)))
    cfg.test_dataloader.update(batch_size=2, num_workers=0,
                               persistent_workers=False)
    return cfg


def test_padding_changes_the_scores_of_the_padded_sample(near):
    cfg = _cfg(near)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    small, big = dataset[0], dataset[1]
    assert small['inputs'].shape[-2:] == (64, 64)
    assert big['inputs'].shape[-2:] == (64, 68)
    with torch.no_grad():
        alone = [model.test_step(pseudo_collate([s]))[0].pred_score
                 for s in (small, big)]
        padded = [s.pred_score for s in
                  model.test_step(pseudo_collate([small, big]))]
    # the largest input is not padded and scores as alone ...
    torch.testing.assert_close(padded[1], alone[1], rtol=1e-5, atol=1e-6)
    # ... the other, padded by 4 columns of zeros (6 %), does not
    change = float((padded[0] - alone[0]).abs().max())
    assert change > 1e-3, change


def test_runner_warns_once_naming_the_padded_files(near, tmp_path):
    """mmengine's TestLoop on the list (every batch padded): one warning,
    naming the 64x64 files (CheckedVideoDataset puts the file name in the
    data sample; the demo's PackActionInputs packs none)."""
    cfg = _cfg(near)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_cfg = dict(type='TestLoop')
    cfg.test_evaluator = dict(type='AccMetric')
    runner = Runner.from_cfg(cfg)  # random weights: only the inputs matter
    runner.test()
    with open(runner.logger.log_file) as f:
        log = f.read()
    assert log.count('zero-padded') == 1, log[-3000:]
    line = next(ln for ln in log.splitlines() if 'zero-padded' in ln)
    first = str(near / 'square/videos_val' / MOTION_CLASSES[0] / '00000.mp4')
    assert f'{first} (64x64)' in line, line
    assert '#0' not in line and 'near/videos_val' not in line
    assert "test_cfg = dict(type='SizeGroupedTestLoop')" in line
    assert 'Said once per run for test' in line
