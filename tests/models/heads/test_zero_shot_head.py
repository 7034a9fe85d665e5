"""ZeroShotClsHead checks its class-embedding file against the dataset's
classes (issue 23, item 1), through the real tools/test.py and
tools/train.py on a small image set."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from data_helpers import make_shape_dataset
from sparseformer_mm.models.heads import ZeroShotClsHead

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
EMBED = 8


def _config(tmp_path, data_root, emb, num_classes=4):
    """The image demo with a zero-shot head on ``emb`` (4-class data)."""
    head = dict(_delete_=True, type='ZeroShotClsHead', in_channels=128,
                embed_dims=EMBED, class_embeddings=str(emb), topk=(1, ))
    if num_classes is not None:
        head['num_classes'] = num_classes
    loader = dict(batch_size=4, num_workers=0,
                  dataset=dict(data_root=str(data_root)))
    path = tmp_path / f'zero_shot_{osp.basename(emb)[:-4]}.py'
    path.write_text(
        f'_base_ = {IMAGE_CFG!r}\n'
        f'model = dict(head={head!r})\n'
        f'train_dataloader = {loader!r}\n'
        f'val_dataloader = {loader!r}\n'
        f'test_dataloader = val_dataloader\n'
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'custom_hooks = [h for h in _base_.custom_hooks '
        "if h['type'] != 'RoIVisualizationHook']\n")
    return str(path)


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO,
                          text=True, capture_output=True, timeout=600)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp('zero_shot')
    make_shape_dataset(str(d / 'data'), num_train=2, num_val=2, size=48)
    g = torch.Generator().manual_seed(0)
    files = {}
    for name, rows in (('good', 4), ('two', 2), ('ten', 10)):
        files[name] = d / f'{name}.pth'
        torch.save(torch.randn(rows, EMBED, generator=g), files[name])
    nan = torch.randn(4, EMBED, generator=g)
    nan[2, 5] = float('nan')
    files['nan'] = d / 'nan.pth'
    torch.save(nan, files['nan'])
    # weights for tools/test.py: the model of the good config
    cfg = Config.fromfile(_config(d, d / 'data', files['good']))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    files['ckpt'] = d / 'zero_shot.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, files['ckpt'])
    return d, files


def test_file_rows_must_be_the_classes(tmp_path):
    emb = tmp_path / 'e.pth'
    torch.save({'embeddings': torch.randn(3, EMBED)}, emb)
    head = ZeroShotClsHead(16, EMBED, class_embeddings=str(emb),
                           num_classes=3)
    assert head.num_classes == 3 and head.class_embeddings.shape == (3, 8)
    torch.testing.assert_close(head.class_embeddings.norm(dim=1),
                               torch.ones(3))
    with pytest.raises(ValueError, match=r'holds 3 class embeddings .*'
                       r'num_classes=5.*set model.head.num_classes=3'):
        ZeroShotClsHead(16, EMBED, class_embeddings=str(emb), num_classes=5)
    with pytest.raises(ValueError, match='needs num_classes'):
        ZeroShotClsHead(16, EMBED, class_embeddings=str(emb))
    torch.save(torch.tensor([[1.0] * EMBED, [float('inf')] * EMBED]), emb)
    with pytest.raises(ValueError, match=r'row\(s\) \[1\]'):
        ZeroShotClsHead(16, EMBED, class_embeddings=str(emb), num_classes=2)
    # without a file it is a projection (a converted CLIP tower's head)
    assert ZeroShotClsHead(16, EMBED).class_embeddings is None


@pytest.mark.slow
def test_test_tool_refuses_a_file_of_other_classes(setup):
    d, files = setup
    res = _run('tools/test.py', _config(d, d / 'data', files['good']),
               files['ckpt'], '--work-dir', d / 'work_good')
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'accuracy/top1' in res.stdout + res.stderr
    for name, what in (('two', 'holds 2 class embeddings'),
                       ('ten', 'holds 10 class embeddings'),
                       ('nan', 'row(s) [2]')):
        res = _run('tools/test.py', _config(d, d / 'data', files[name]),
                   files['ckpt'], '--work-dir', d / f'work_{name}')
        assert res.returncode != 0, (name, res.stdout[-1500:])
        assert str(files[name]) in res.stderr and what in res.stderr, (
            name, res.stderr[-2000:])
        assert 'accuracy/top1' not in res.stdout + res.stderr


@pytest.mark.slow
def test_train_tool_refuses_a_file_of_other_classes(setup):
    d, files = setup
    res = _run('tools/train.py', _config(d, d / 'data', files['two']),
               '--work-dir', d / 'train_two')
    assert res.returncode != 0
    assert str(files['two']) in res.stderr
    assert 'model.head.num_classes=4' in res.stderr, res.stderr[-2000:]
    assert 'IndexError' not in res.stderr
