"""The image configs skip an unreadable image as the video configs skip bad
videos (issue 17, item 11): the demo config as it is, in a real Runner with
the image runtime's DataCheckHook; without bad files the wrapper changes
nothing; and non-finite inputs are named (item 7).

The flat form of ``SkipBadSamples`` (``dataset='CustomDataset'`` and its
arguments beside it) keeps the config paths a user of mmpretrain sets, e.g.
``train_dataloader.dataset.data_root``.
"""
import copy
import re
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DATASETS, DefaultScope
from mmengine.runner import Runner

from data_helpers import make_shape_dataset
from sparseformer_mm.datasets import BadSampleError, SkipBadSamples
from sparseformer_mm.datasets.checked_dataset import bad_samples_of
from sparseformer_mm.visualization import warn_non_finite

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# the image demo `make demo` trains (its dataloaders come from the 6e base)
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-8e_shapes.py')


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: on a loaded 2-core machine two threads mostly wait on
    # each other
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _short_run_cfg(root, work, with_val=True):
    """The demo config as it is, on ``root``: 1 epoch, batch 4, no worker
    processes (the options a user would pass on the command line)."""
    cfg = Config.fromfile(IMAGE_CFG)
    cfg.merge_from_dict({
        'work_dir': str(work),
        # runners started in the same second would share a logger (and its
        # file) by the default name, the timestamp
        'experiment_name': str(work),
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'train_dataloader.batch_size': 4,
        'train_dataloader.num_workers': 0,
        'val_dataloader.batch_size': 4,
        'val_dataloader.num_workers': 0,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'default_hooks.logger.interval': 1,
    })
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] != 'RoIVisualizationHook']
    if not with_val:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def _log(runner):
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def test_demo_config_wraps_every_split():
    cfg = Config.fromfile(IMAGE_CFG)
    for split in ('train', 'val', 'test'):
        ds = cfg[f'{split}_dataloader'].dataset
        assert (ds.type, ds.dataset) == ('SkipBadSamples', 'CustomDataset')


def test_unreadable_png_is_skipped_and_named(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=2, num_val=2, size=32)
    bad_train = sorted((tmp_path / 'shapes' / 'train').glob('*/*.png'))[0]
    bad_train.write_bytes(b'not a png at all')
    bad_val = sorted((tmp_path / 'shapes' / 'val').glob('*/*.png'))[0]
    bad_val.write_bytes(b'')
    cfg = _short_run_cfg(root, tmp_path / 'work')
    # the runtime's own DataCheckHook, with a limit that one bad file of
    # eight allows (its default, 1 %, would stop the run: tested below)
    (check, ) = [h for h in cfg.custom_hooks if h['type'] == 'DataCheckHook']
    check['max_bad_fraction'] = 0.2
    runner = Runner.from_cfg(cfg)
    runner.train()  # without the wrapper: an exception at the bad file
    log = _log(runner)
    assert f'bad train sample replaced: {bad_train} (' in log, log[-3000:]
    assert f'bad val sample replaced: {bad_val} (empty file (0 bytes))' in log
    assert f"train epoch 1: 1 of 8 samples were bad and replaced: " \
        f"['{bad_train}']" in log
    assert osp.isfile(osp.join(str(tmp_path / 'work'), 'epoch_1.pth'))


def test_too_many_unreadable_images_stop_with_their_names(tmp_path):
    """The runtime's limit (1 % of an epoch) applies to images too."""
    from sparseformer_mm.engine.hooks import BadDataError
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=2, num_val=0, size=32)
    bad = sorted((tmp_path / 'shapes' / 'train').glob('*/*.png'))[0]
    bad.write_bytes(b'GIF89a')
    runner = Runner.from_cfg(_short_run_cfg(root, tmp_path / 'work',
                                            with_val=False))
    with pytest.raises(BadDataError, match=(
            r'(?s)1 of 8 train samples .*max_bad_fraction=0.01 allows:\n  '
            + re.escape(f'{bad}: AssertionError: failed to load image '
                        '(6 bytes)'))):
        runner.train()


def test_labels_beyond_the_head_fail_before_training(tmp_path):
    """DataCheckHook sees through the wrapper: a class folder more than
    the head has classes fails before the run, naming a sample."""
    from sparseformer_mm.datasets import AnnotationError
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=1, num_val=0, size=32)
    cfg = _short_run_cfg(root, tmp_path / 'work', with_val=False)
    cfg.model.head.num_classes = 3  # the data has 4 classes
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AnnotationError, match=(
            r"(?s)1 label\(s\) in CustomDataset are out of range for the "
            r"head's num_classes=3.*sample 3 .*triangle.*: label 3")):
        runner.train()
    assert runner.iter == 0


def test_an_odd_sized_image_is_named_in_a_padding_warning(tmp_path):
    """The demo pipelines do not resize (the generated data has one size);
    one large image pads its batch, and the runtime's BatchPaddingHook
    names the padded files (from SkipBadSamples' metainfo) with the
    transform to add, once."""
    import cv2
    import numpy as np
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=1, num_val=0, size=32)
    images = sorted((tmp_path / 'shapes' / 'train').glob('*/*.png'))
    big = images[0]
    assert cv2.imwrite(str(big), np.zeros((96, 128, 3), np.uint8))
    runner = Runner.from_cfg(_short_run_cfg(root, tmp_path / 'work',
                                            with_val=False))
    runner.train()
    log = _log(runner)
    found = re.search(
        r"train batch \d: inputs of sizes \[\(32, 32\), \(96, 128\)\] are "
        r"zero-padded to 96x128 \(12x the smallest area\), which changes the "
        r"scores of the padded ones .*: (.*)\. Resize to one size in the "
        r"pipeline \(e\.g\. dict\(type='ResizeEdge', scale=256, "
        r"edge='short'\) then a crop\)", log)
    assert found, log[-3000:]
    named = found.group(1)
    assert str(big) not in named  # the large one is not padded
    assert any(f'{p} (32x32)' in named for p in map(str, images[1:])), named
    assert log.count('zero-padded') == 1


def _trained_weights(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_without_bad_files_the_wrapper_changes_nothing(tmp_path):
    """Same data order, same numbers: a short training with the demo config
    (wrapped) and with its bare CustomDataset end with identical weights."""
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=3, num_val=0, size=32)
    wrapped = _short_run_cfg(root, tmp_path / 'a', with_val=False)
    bare = _short_run_cfg(root, tmp_path / 'b', with_val=False)
    inner = copy.deepcopy(bare.train_dataloader.dataset.to_dict())
    inner.pop('type')
    inner['type'] = inner.pop('dataset')
    bare.train_dataloader.dataset = inner
    assert bare.train_dataloader.dataset.type == 'CustomDataset'
    a, b = _trained_weights(wrapped), _trained_weights(bare)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and training moved the weights (the comparison is not vacuous)
    torch.manual_seed(0)
    fresh = Runner.from_cfg(_short_run_cfg(root, tmp_path / 'c', False))
    fresh.model.init_weights()
    moved = fresh.model.state_dict()
    assert not torch.equal(moved['head.fc.weight'], a['head.fc.weight'])


def test_flat_and_nested_forms_and_overrides(tmp_path):
    root = str(tmp_path / 'shapes')
    make_shape_dataset(root, num_train=1, num_val=0, size=32)
    bad = sorted((tmp_path / 'shapes' / 'train').glob('*/*.png'))[0]
    bad.write_bytes(b'')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        flat = DATASETS.build(dict(type='SkipBadSamples',
                                   dataset='CustomDataset', data_root=root,
                                   data_prefix='train', pipeline=pipeline))
        # a key set on a nested wrapper (e.g. --cfg-options
        # train_dataloader.dataset.data_root=...) reaches the dataset
        nested = DATASETS.build(dict(
            type='SkipBadSamples', data_root=root,
            dataset=dict(type='CustomDataset', data_root='elsewhere',
                         data_prefix='train', pipeline=pipeline)))
    for ds in (flat, nested):
        assert isinstance(ds, SkipBadSamples) and len(ds) == 4
        assert ds.data_root == root
        i = [ds.get_data_info(k)['img_path'] for k in range(4)].index(
            str(bad))
        assert bad_samples_of(ds[i]['data_samples']) == [
            (str(bad), 'empty file (0 bytes)')]
    with pytest.raises(TypeError, match=r"arguments \['data_root'\] for an "
                       'already built CustomDataset'):
        SkipBadSamples(flat.dataset, data_root=root)
    # max_retries=0: the first bad image is an error naming it
    with pytest.raises(BadSampleError, match=(
            rf'(?s)sample {i} failed to load \(max_retries=0: no replacement '
            rf'tried\):\n  {re.escape(str(bad))}: empty file')):
        SkipBadSamples(flat.dataset, max_retries=0)[i]


def test_non_finite_input_warns():
    x = torch.zeros(1, 3, 8, 8)
    assert not warn_non_finite(x, 'ok.png')
    x[0, 0, 0, 0] = float('nan')
    with pytest.warns(UserWarning, match='input bad.png has 1 non-finite'):
        assert warn_non_finite(x, 'bad.png')
