"""SizeGroupedValLoop / SizeGroupedTestLoop: a batch of full-frame views of
several sizes gives each video the prediction it gets alone (batch 1),
where mmengine's loop zero-pads it to the largest size and changes it."""
import copy
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import sparseformer_mm  # noqa: F401  (registries)
from data_helpers import MOTION_CLASSES, REPO, make_motion_dataset
from sparseformer_mm.engine.size_grouped_loops import split_by_size

DEMO_FULL = osp.join(
    REPO, 'projects/full_frame_views/configs/'
    'videosparseformer-nano_1xb16-4x8x1-6e_motion-wide_full-frame.py')


def test_split_by_size_groups_in_order():
    a, b, c = torch.zeros(1, 3, 4, 8, 8), torch.ones(1, 3, 4, 8, 14), \
        torch.full((1, 3, 4, 8, 8), 2.)
    batch = dict(inputs=[a, b, c], data_samples=['a', 'b', 'c'])
    groups = split_by_size(batch)
    assert [g['data_samples'] for g in groups] == [['a', 'c'], ['b']]
    assert groups[0]['inputs'][1] is c and groups[1]['inputs'][0] is b
    same = dict(inputs=[a, c], data_samples=['a', 'c'])
    assert split_by_size(same)[0] is same  # one size: untouched
    stacked = dict(inputs=torch.stack([a, c]), data_samples=['a', 'c'])
    assert split_by_size(stacked) == [stacked]


@pytest.fixture(scope='module')
def mixed(tmp_path_factory):
    """One list of val clips alternating 64x64 and 128x72 (every batch of
    4 mixes sizes), and a checkpoint of the demo's model."""
    root = tmp_path_factory.mktemp('mixed')
    for name, size in (('square', 64), ('wide', (128, 72))):
        make_motion_dataset(str(root / name), num_train=1, num_val=1,
                            size=size, num_frames=32, seed=0)
    lines = [f'{name}/videos_val/{cls}/00000.mp4 {label}'
             for label, cls in enumerate(MOTION_CLASSES)
             for name in ('square', 'wide')]
    (root / 'mixed.txt').write_text('\n'.join(lines) + '\n')
    cfg = Config.fromfile(DEMO_FULL)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = root / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return root, ckpt


def _config(root):
    """The full-frame demo config on the mixed list, file names kept."""
    cfg = Config.fromfile(DEMO_FULL)
    cfg.test_dataloader.dataset.update(ann_file=str(root / 'mixed.txt'),
                                       data_prefix=dict(video=str(root)))
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline[-1] = dict(type='PackActionInputs',
                        meta_keys=('img_shape', 'filename'))
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg


def _scores_one_by_one(root, ckpt):
    """{file name: class scores}, each video alone through the model."""
    from mmaction.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    cfg = _config(root)
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(ckpt)['state_dict'])
    model.eval()
    scores = {}
    with torch.no_grad():
        for i in range(len(dataset)):
            out = model.test_step(pseudo_collate([dataset[i]]))[0]
            scores[out.filename] = out.pred_score
    return scores


def _test_scores(root, ckpt, work_dir, batch_size, loop):
    """{file name: class scores} of a test run of the full-frame demo
    config on the mixed list, and the run's log."""
    cfg = _config(root)
    cfg.work_dir = str(work_dir)
    cfg.load_from = str(ckpt)
    cfg.test_cfg = dict(type=loop)
    cfg.test_dataloader.update(batch_size=batch_size, num_workers=0,
                               persistent_workers=False)
    dump = osp.join(str(work_dir), 'scores.pkl')
    cfg.test_evaluator = [dict(type='AccMetric'),
                          dict(type='DumpResults', out_file_path=dump)]
    runner = Runner.from_cfg(cfg)
    runner.test()
    with open(dump, 'rb') as f:
        results = pickle.load(f)
    with open(runner.logger.log_file) as f:
        log = f.read()
    return {r['filename']: r['pred_score'] for r in results}, log


def test_mixed_sizes_score_as_alone(mixed, tmp_path):
    root, ckpt = mixed
    alone = _scores_one_by_one(root, ckpt)
    grouped, log = _test_scores(root, ckpt, tmp_path / 'b4', 4,
                                'SizeGroupedTestLoop')
    assert len(alone) == len(grouped) == 8
    for name, score in alone.items():
        torch.testing.assert_close(grouped[name], score, rtol=1e-5,
                                   atol=1e-6)
    assert 'holds inputs of 2 sizes' in log and log.count(
        'holds inputs of') == 1
    assert 'zero-padded' not in log  # BatchPaddingHook saw one size a batch

    # mmengine's loop pads the 64x64 clips to 64x114 (the model sees them
    # beside black bars): their scores change, the wide clips' do not
    padded, _ = _test_scores(root, ckpt, tmp_path / 'plain', 4, 'TestLoop')
    for name, score in alone.items():
        same = torch.allclose(padded[name], score, rtol=1e-5, atol=1e-6)
        assert same == ('/wide/' in name), name


@pytest.mark.slow
def test_test_tool_dumps_in_dataset_order(mixed, tmp_path):
    """``tools/test.py --dump`` under SizeGroupedTestLoop, with the demo's
    own pipeline (PackActionInputs' default meta keys: no file name): entry
    i of the dump is video i of the list, as with an ungrouped loop."""
    root, ckpt = mixed
    alone = _scores_one_by_one(root, ckpt)
    lines = (root / 'mixed.txt').read_text().split('\n')
    files = [str(root / ln.split()[0]) for ln in lines if ln.strip()]
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        f'_base_ = [{DEMO_FULL!r}]\n'
        f'test_dataloader = dict(batch_size=4, num_workers=0, '
        f'persistent_workers=False, dataset=dict(ann_file='
        f'{str(root / "mixed.txt")!r}, data_prefix=dict(video='
        f'{str(root)!r})))\n')
    dump = tmp_path / 'results.pkl'
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    res = subprocess.run(
        [sys.executable, 'tools/test.py', str(cfg), str(ckpt), '--work-dir',
         str(tmp_path / 'work'), '--dump', str(dump)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert 'holds inputs of 2 sizes' in res.stdout + res.stderr
    with open(dump, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == len(files) == 8
    for i, (r, name) in enumerate(zip(results, files)):
        # the dataset names each result's file, and the scores are that
        # file's own (batch 1)
        assert r['filename'] == name, i
        assert r['sample_idx'] == i
        torch.testing.assert_close(r['pred_score'], alone[name], rtol=1e-5,
                                   atol=1e-6)
