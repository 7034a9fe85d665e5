"""configs/k400.py and its variants: build, and a real training iteration."""
import glob
import json
import os.path as osp
import subprocess
import sys

import mmaction
import pytest
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from data_helpers import make_motion_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VARIANTS = sorted(glob.glob(osp.join(REPO, 'configs/videosparseformer/*.py')))
# our train.py, the one mmaction2 users already run (from its wheel), and
# Runner.from_cfg in a script
TRAIN_TOOLS = {
    'ours': 'tools/train.py',
    'mmaction2': osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools',
                          'train.py'),
    'runner': osp.join(REPO, 'tests', 'runner_script.py'),
}


@pytest.mark.parametrize('path', [osp.join(REPO, 'configs/k400.py')] +
                         VARIANTS, ids=osp.basename)
def test_video_configs_build(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmaction'
    cfg.model.backbone.pretrained = None
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    arch = model.backbone.arch_settings
    assert model.backbone.num_total_tokens == \
        arch['num_tokens'] * cfg.model.backbone.replicates
    assert model.cls_head.num_classes == 400
    sample = cfg.train_dataloader.dataset.pipeline[1]
    assert sample['type'] == 'SampleFrames'
    assert cfg.test_dataloader.dataset.pipeline[1]['num_clips'] == 4


@pytest.mark.slow
@pytest.mark.parametrize('tool', list(TRAIN_TOOLS))
def test_k400_trains_one_iteration_on_a_kinetics_folder(tmp_path, tool):
    root = tmp_path / 'kinetics'
    make_motion_dataset(str(root), num_train=1, num_val=1, size=64,
                        num_frames=32, seed=0)
    work = tmp_path / 'work'
    script = TRAIN_TOOLS[tool]
    overrides = [
        f'train_dataloader.dataset.ann_file={root}/kinetics400_train_list_videos.txt',
        f'train_dataloader.dataset.data_prefix.video={root}/videos_train',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'model.backbone.pretrained=None', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
    ]
    res = subprocess.run(
        [sys.executable, script, 'configs/k400.py', '--work-dir',
         str(work), '--no-validate', '--cfg-options'] + overrides,
        cwd=REPO, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    # CPU: AmpOrFp32OptimWrapper falls back to fp32, and says so
    assert 'trains in fp32 instead of AMP' in out
    records = [json.loads(line) for line in
               open(glob.glob(str(work / '*/vis_data/scalars.json'))[0])]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(v > 0 for v in losses)  # 4 clips / 2
    assert (work / 'epoch_1.pth').exists()
    # the clips were decoded by the configs' default backend
    dumped = Config.fromfile(str(work / 'k400.py'))
    assert dumped.train_dataloader.dataset.pipeline[0] == dict(
        type='VideoInit', backend='pyav', io_backend='disk')


def test_missing_pretrained_checkpoint_says_what_to_do():
    cfg = Config.fromfile(osp.join(REPO, 'configs/k400.py'))
    cfg.model.backbone.pretrained = 'checkpoints/does_not_exist.pth'
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match='sparseformer_to_mm.py'):
        model.init_weights()
