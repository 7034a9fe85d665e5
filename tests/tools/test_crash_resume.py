"""A training run killed with SIGKILL mid-epoch and resumed with --resume
ends with the same weights as an unbroken run (CPU, deterministic mode)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from data_helpers import make_shape_dataset

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TIMEOUT = 300  # a safety net; each run takes ~10 s on 2 cores

# 16 training images, batch 4: 4 iterations per epoch, 3 epochs. Everything
# that draws random numbers is on: shuffling, random flips (numpy, in the
# main process), drop path (torch), and EMA weights are kept.
CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['sparseformer_mm', 'crash_hook'],
                      allow_failed_imports=False)
model = dict(backbone=dict(drop_path_rate=0.2))
train_dataloader = dict(batch_size=4, num_workers=0,
                        dataset=dict(data_root={root!r}))
val_dataloader = dict(batch_size=8, num_workers=0,
                      dataset=dict(data_root={root!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=3, val_interval=1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))
custom_hooks = [
    dict(type='RNGStateHook'),  # as in the runtimes: what makes it bit-exact
    dict(type='EMAHook', momentum=0.1, priority='ABOVE_NORMAL'),
    dict(type='CrashHook'),
]
'''


def _train(config, work, extra=(), crash_env=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=osp.join(REPO, 'tests', 'tools'))
    env.update(crash_env or {})
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir',
           str(work), '--seed', '0', '--deterministic', *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_sigkill_mid_epoch_then_resume_matches_unbroken_run(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=4, num_val=2, size=32)
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG.format(
        base=osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'),
        root=root))

    unbroken = _train(config, tmp_path / 'a')
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]

    # Iteration 6 is the 2nd of epoch 2: epoch_1.pth exists, epoch 2 is
    # half done when the process SIGKILLs itself.
    work = tmp_path / 'b'
    killed = _train(config, work, crash_env=dict(CRASH_AT_ITER='6'))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (work / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    assert not (work / 'epoch_2.pth').exists()

    resumed = _train(config, work, extra=['--resume'])
    tail = resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.returncode == 0, tail
    assert 'resumed epoch: 1, iter: 4' in tail, tail

    a, b = _load(tmp_path / 'a' / 'epoch_3.pth'), _load(work / 'epoch_3.pth')
    assert (a['meta']['epoch'], a['meta']['iter']) == (3, 12)
    assert (b['meta']['epoch'], b['meta']['iter']) == (3, 12)
    # Bit for bit: the (EMA) weights, the raw weights EMAHook keeps, the
    # AdamW moments and the schedulers.
    for key in ('state_dict', 'ema_state_dict'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    assert a['param_schedulers'] == b['param_schedulers']
