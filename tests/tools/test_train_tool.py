"""tools/train.py with the ImageNet config and tiny data overrides (CPU)."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from data_helpers import make_imagenet_like

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_train_tool_runs_a_real_step_on_the_imagenet_config(tmp_path):
    root = make_imagenet_like(str(tmp_path / 'imagenet'), per_class=1)
    work = tmp_path / 'work'
    overrides = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
    ]
    cmd = [sys.executable, 'tools/train.py',
           'configs/sparseformer/sparseformer-tiny_8xb128_in1k.py',
           '--work-dir', str(work), '--seed', '0', '--cfg-options'] + overrides
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # RepeatAugSampler keeps the epoch at len(dataset) samples (each seen
    # 3x across ranks): 4 images / batch 4 = 1 iteration, a checkpoint, a val
    logs = list(work.glob('*/vis_data/scalars.json'))
    assert logs, list(work.iterdir())
    records = [json.loads(line) for line in open(logs[0])]
    train = [r for r in records if 'loss' in r]
    assert len(train) == 1 and all(r['loss'] > 0 for r in train)
    assert any('accuracy/top1' in r for r in records)
    assert (work / 'epoch_1.pth').exists()


@pytest.mark.slow
def test_auto_scale_lr_without_a_base_batch_is_an_error():
    res = subprocess.run(
        [sys.executable, 'tools/train.py',
         'configs/demo/sparseformer-nano_1xb32-6e_shapes.py',
         '--auto-scale-lr', '--cfg-options', 'auto_scale_lr=None'],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode != 0
    assert 'needs auto_scale_lr.base_batch_size in configs/demo/' in res.stderr


def test_amp_required_without_a_gpu_is_a_clear_error(monkeypatch):
    """--amp (type='AmpOptimWrapper') needs a GPU: one message saying what
    to change, before any dataset or process group is built. The configs'
    AmpOrFp32OptimWrapper passes (fp32 here)."""
    from mmengine.config import Config
    from tools import cli_utils
    monkeypatch.setattr(cli_utils, 'amp_available', lambda: False)
    for required in (dict(type='AmpOptimWrapper'),  # --amp sets the second
                     dict(type='AmpOrFp32OptimWrapper', amp=True)):
        cfg = Config(dict(optim_wrapper=required))
        with pytest.raises(RuntimeError, match="drop --amp to train in fp32, "
                           "or set optim_wrapper.type='AmpOrFp32OptimWrapper'"):
            cli_utils.check_amp_device(cfg)
    cli_utils.check_amp_device(Config(dict(optim_wrapper=dict(
        type='AmpOrFp32OptimWrapper'))))
