"""Two nodes on one host: two ``tools/dist_train.sh`` launchers (``NNODES=2``,
``NODE_RANK`` 0 and 1, ``MASTER_ADDR=127.0.0.1``, one port, one process
each) train the video demo config over gloo; a node killed mid-run ends
both launchers, non-zero, each naming its rank; ``--resume`` continues."""
import os.path as osp
import threading

import pytest
from test_dist_failures import TEST_CONFIG, _failures
from test_dist_train import REPO, _env, _run

from data_helpers import make_motion_dataset

pytestmark = pytest.mark.slow  # process-level: see pytest.ini

DEMO = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'


def _job(tmp_path, **env_updates):
    """Both nodes' ``(command, env)``: 8 clips over 2 ranks, batch 2, so
    2 iterations an epoch, 2 epochs."""
    root = str(tmp_path / 'clips')
    if not osp.exists(root):
        make_motion_dataset(root, num_train=2, num_val=1, size=32,
                            num_frames=32, seed=0)
    config = tmp_path / 'cfg.py'
    config.write_text(TEST_CONFIG.format(
        base=osp.join(REPO, DEMO), hooks="dict(type='CrashHook')",
        non_finite='raise'))
    cmd = ['bash', 'tools/dist_train.sh', str(config), '1', '--work-dir',
           str(tmp_path / 'work'), '--no-validate', '--cfg-options',
           f'train_dataloader.dataset.ann_file='
           f'{root}/kinetics400_train_list_videos.txt',
           f'train_dataloader.dataset.data_prefix.video={root}/videos_train',
           'train_dataloader.batch_size=2',
           'train_dataloader.num_workers=0']
    base = _env()  # one free PORT for both
    base.update(NNODES='2', MASTER_ADDR='127.0.0.1', DIST_TIMEOUT='60',
                PYTHONPATH=osp.join(REPO, 'tests', 'tools'), **env_updates)
    return [(cmd, dict(base, NODE_RANK=str(n))) for n in (0, 1)]


def _run_nodes(jobs, tmp_path, name):
    """Both launchers at once; ``[(code, out, err)]`` for node 0 and 1."""
    results = [None, None]

    def node(n):
        folder = tmp_path / f'{name}_node{n}'
        folder.mkdir()
        results[n] = _run(*jobs[n], folder)

    threads = [threading.Thread(target=node, args=(n, )) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _tail(results):
    return ''.join(f'\nNODE {n} STDOUT:\n{out[-2000:]}\nSTDERR:\n'
                   f'{err[-2000:]}' for n, (_, out, err) in
                   enumerate(results))


def test_two_nodes_train_the_video_demo(tmp_path):
    results = _run_nodes(_job(tmp_path), tmp_path, 'train')
    assert [r[0] for r in results] == [0, 0], _tail(results)
    out0 = results[0][1]
    assert 'with the gloo backend (world size 2)' in out0, _tail(results)
    assert 'Epoch(train) [2][2/2]' in out0, _tail(results)
    assert (tmp_path / 'work' / 'epoch_2.pth').exists()


def test_a_killed_node_ends_both_and_resume_continues(tmp_path):
    # node 1's process (rank 1) is killed after iteration 3 (epoch 2)
    jobs = _job(tmp_path, CRASH_AT_ITER='3', CRASH_RANK='1')
    results = _run_nodes(jobs, tmp_path, 'crash')
    (code0, _, err0), (code1, _, err1) = results
    assert code0 != 0 and code1 != 0, _tail(results)
    # each launcher's summary names its failed rank: the killed one, and
    # the one whose peer went away
    assert _failures(err1).get(1) == -9, _tail(results)
    assert 0 in _failures(err0), _tail(results)
    work = tmp_path / 'work'
    assert (work / 'epoch_1.pth').exists() and \
        not (work / 'epoch_2.pth').exists()

    resumed = [(cmd + ['--resume'], env) for cmd, env in _job(tmp_path)]
    results = _run_nodes(resumed, tmp_path, 'resume')
    assert [r[0] for r in results] == [0, 0], _tail(results)
    out0 = results[0][1]
    assert 'resumed epoch: 1, iter: 2' in out0, _tail(results)
    assert 'Epoch(train) [2][2/2]' in out0, _tail(results)
    assert (work / 'epoch_2.pth').exists()
