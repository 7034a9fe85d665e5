"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU ranks (gloo)."""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

import pytest

from data_helpers import make_shape_dataset

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'
TIMEOUT = 300  # a safety net; both runs take ~15 s on 2 cores


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _descendants(pid):
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _run(cmd, env, tmp_path):
    """Run ``cmd`` with its output in files (a stray worker holding a pipe
    cannot block the test); on the safety timeout kill it and every process
    under it, torchrun's workers included, and fail."""
    out, err = tmp_path / 'stdout.txt', tmp_path / 'stderr.txt'
    with open(out, 'w') as fo, open(err, 'w') as fe:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fo,
                                stderr=fe, start_new_session=True)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid] + _descendants(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            raise AssertionError(f'timed out after {TIMEOUT}s:\n'
                                 f'{err.read_text()[-3000:]}')
    return proc.returncode, out.read_text(), err.read_text()


def _env():
    env = dict(os.environ)
    # Hide any GPU so that this always tests the CPU (gloo) fallback: two
    # NCCL ranks would not fit on a single-GPU machine anyway.
    env.update(CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable,
               PORT=str(_free_port()), OMP_NUM_THREADS='1')
    return env


def test_dist_train_and_test_on_two_cpu_ranks(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=4, num_val=2, size=32)  # 16/8 images
    loader_opts = []
    for split in ('train', 'val', 'test'):
        loader_opts += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.batch_size=4',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]

    work = tmp_path / 'work'
    code, out, err = _run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
         str(work), '--cfg-options'] + loader_opts + [
             'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
             'default_hooks.logger.interval=1'], _env(), tmp_path)
    tail = f'\nSTDOUT:\n{out[-3000:]}\nSTDERR:\n{err[-3000:]}'
    assert code == 0, tail
    assert 'with the gloo backend (world size 2)' in out, tail
    ckpt = work / 'epoch_1.pth'
    assert ckpt.exists(), list(work.iterdir())

    # Rank 0's log file records the launcher and the world size.
    logs = list(work.glob('*/*.log'))
    assert len(logs) == 1, list(work.iterdir())
    log = logs[0].read_text()
    assert 'Distributed launcher: pytorch' in log, log[-3000:]
    assert 'GPU number: 2' in log, log[-3000:]  # mmengine's world_size
    # The sampler split 16 images over 2 ranks: 2 iterations of 4 each.
    scalars = next(work.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in open(scalars)]
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2], records
    assert any('accuracy/top1' in r for r in records), records

    code, out, err = _run(
        ['bash', 'tools/dist_test.sh', CONFIG, str(ckpt), '2', '--work-dir',
         str(tmp_path / 'test'), '--cfg-options'] + loader_opts, _env(),
        tmp_path)
    tail = f'\nSTDOUT:\n{out[-3000:]}\nSTDERR:\n{err[-3000:]}'
    assert code == 0, tail
    metrics = [line for line in out.splitlines()
               if line.startswith('test metrics:')]
    # Printed by rank 0 only.
    assert len(metrics) == 1 and 'accuracy/top1=' in metrics[0], tail
