"""How the configs are laid out, which is what a reader of one file relies on.

- A Kinetics-400 config states its model, data and schedule itself; its only
  base is the video runtime (as mmaction2's configs do). An arch variant
  (it sets nothing but ``model``) inherits one such config instead.
- ``configs/k400.py`` is the SparseFormer-T K400 config under a short name.
- ``configs/demo/`` holds the two configs `make demo` trains and their
  base only; the research configs live with their project
  (``projects/<name>/configs/``).
- The demos derive from the demo configs and a runtime only, a project's
  configs from those, its own configs and a runtime, never from a
  production config; the video demo `make demo` trains loads the
  checkpoint of the image demo it trains.
- Every config's name tells its batch (``{gpus}xb{batch}``) and epochs
  (``-{epochs}e``), and its ``auto_scale_lr.base_batch_size`` is
  gpus x batch (an evaluation config: its validation batch).
"""
import ast
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
VIDEO_RUNTIME = osp.join(CONFIGS, '_base_', 'video_runtime.py')
IMAGE_RUNTIME = osp.join(CONFIGS, '_base_', 'default_runtime.py')
K400 = sorted(glob.glob(osp.join(CONFIGS, 'videosparseformer', '*.py')))
K400_TINY = osp.join(
    CONFIGS, 'videosparseformer',
    'videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py')
DEMOS = sorted(glob.glob(osp.join(CONFIGS, 'demo', '*.py')))
PROJECTS = osp.join(REPO, 'projects')
PROJECT_CONFIGS = sorted(
    glob.glob(osp.join(PROJECTS, '*', 'configs', '*.py')) +
    glob.glob(osp.join(PROJECTS, '*', 'configs', '_base_', '*.py')))


def _makefile_configs():
    """The image and video configs `make demo` trains."""
    with open(osp.join(REPO, 'Makefile')) as f:
        found = dict(re.findall(r'^(IMAGE|VIDEO)_CFG\s*:=\s*(\S+)', f.read(),
                                re.M))
    return (osp.join(REPO, found['IMAGE']), osp.join(REPO, found['VIDEO']))


IMAGE_DEMO, VIDEO_DEMO = _makefile_configs()
NAMED = sorted(
    glob.glob(osp.join(CONFIGS, '*', '*.py')) + [osp.join(CONFIGS, 'k400.py')]
    + PROJECT_CONFIGS)
NAMED = [p for p in NAMED if '_base_' not in p]


def _top_level(path):
    """The names a config file assigns at top level, and its ``_base_``
    files as absolute paths."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    names, bases = set(), []
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    names.add(name.id)
            if isinstance(target, ast.Name) and target.id == '_base_':
                value = ast.literal_eval(node.value)
                value = [value] if isinstance(value, str) else value
                bases = [osp.normpath(osp.join(osp.dirname(path), b))
                         for b in value]
    return names, bases


def _base_chain(path):
    """Every file a config inherits from, transitively."""
    chain = []
    for base in _top_level(path)[1]:
        chain += [base] + _base_chain(base)
    return chain


def test_there_are_configs_to_check():
    assert len(K400) >= 4, K400  # T, S, B, T-r4
    assert IMAGE_DEMO in DEMOS and VIDEO_DEMO in DEMOS
    assert len(PROJECT_CONFIGS) >= 9, PROJECT_CONFIGS


def test_demo_folder_holds_the_main_demo_only():
    main = {IMAGE_DEMO, VIDEO_DEMO}
    wanted = main | {b for p in main for b in _base_chain(p)
                     if osp.dirname(b) == osp.join(CONFIGS, 'demo')}
    assert set(DEMOS) == wanted, (
        f'configs/demo/ is for `make demo`: move {sorted(set(DEMOS) - wanted)}'
        ' to its project (projects/<name>/configs/)')


@pytest.mark.parametrize('path', K400, ids=osp.basename)
def test_k400_config_reads_top_down(path):
    names, bases = _top_level(path)
    if names == {'_base_', 'model'}:  # an arch variant of one K400 config
        assert len(bases) == 1 and bases[0] in K400, f'{path}: bases {bases}'
        path = bases[0]
        names, bases = _top_level(path)
    assert bases == [VIDEO_RUNTIME], f'{path}: bases {bases}'
    for key in ('model', 'train_pipeline', 'val_pipeline', 'test_pipeline',
                'train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'optim_wrapper', 'param_scheduler',
                'train_cfg', 'auto_scale_lr'):
        assert key in names, f'{osp.basename(path)} does not set {key}'


def test_k400_short_name_is_the_tiny_config():
    short = Config.fromfile(osp.join(CONFIGS, 'k400.py')).to_dict()
    assert short == Config.fromfile(K400_TINY).to_dict()


@pytest.mark.parametrize('path', DEMOS + PROJECT_CONFIGS,
                         ids=lambda p: osp.relpath(p, REPO))
def test_demo_derives_from_demos_and_a_runtime_only(path):
    chain = _base_chain(path)
    own = osp.dirname(path)
    if osp.basename(own) == '_base_':  # arch data of a project
        assert not chain, f'{path} inherits {chain}'
        return
    allowed = {osp.join(CONFIGS, 'demo'), own, osp.join(own, '_base_')}
    for base in chain:
        assert osp.dirname(base) in allowed or base in (
            IMAGE_RUNTIME, VIDEO_RUNTIME), f'{path} inherits {base}'
    assert {IMAGE_RUNTIME, VIDEO_RUNTIME} & set(chain), path


def _decoding_steps(cfg):
    return [(step['type'], step.get('backend'))
            for name in ('train_pipeline', 'val_pipeline', 'test_pipeline')
            for step in cfg[name] if step['type'].endswith(('Init', 'Decode'))]


def test_video_demo_decodes_as_the_k400_configs():
    k400 = _decoding_steps(Config.fromfile(K400_TINY))
    assert k400 == [('VideoInit', 'pyav'), ('VideoDecode', None)] * 3, k400
    assert _decoding_steps(Config.fromfile(VIDEO_DEMO)) == k400


def test_video_demo_loads_the_image_demo_checkpoint(tmp_path):
    """What `make demo` does (with its Makefile's configs): the image
    demo's checkpoint, passed as ``model.backbone.pretrained``, loads
    (strictly, inflated) into the video demo's model."""
    from mmaction.registry import MODELS as ACTION_MODELS
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    image_cfg = Config.fromfile(IMAGE_DEMO)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        image = PRETRAIN_MODELS.build(image_cfg.model)
    image.init_weights()
    ckpt = tmp_path / 'epoch_6.pth'
    torch.save({'state_dict': image.state_dict(), 'meta': {}}, ckpt)

    video_cfg = Config.fromfile(VIDEO_DEMO)
    video_cfg.model.backbone.pretrained = str(ckpt)
    with DefaultScope.overwrite_default_scope('mmaction'):
        video = ACTION_MODELS.build(video_cfg.model)
    video.init_weights()  # strict: raises if the archs differ
    stem = image.backbone.state_dict()
    for key, value in video.backbone.state_dict().items():
        if key.endswith('weight') and value.dim() == 5:  # the stem conv
            assert torch.equal(value[:, :, 0], stem[key])
            break
    else:
        pytest.fail('no 3-D conv in the video backbone')


@pytest.mark.parametrize('path', NAMED, ids=osp.basename)
def test_name_tells_batch_and_epochs(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    if name == 'k400.py':
        name = osp.basename(K400_TINY)
    m = re.search(r'_(\d+)xb(\d+)[-_]', name)
    assert m, f'{name}: no {{gpus}}xb{{batch}}'
    gpus, batch = map(int, m.groups())
    if 'train_dataloader' not in cfg:  # an evaluation config
        assert cfg.val_dataloader.batch_size == batch, name
        return
    assert cfg.train_dataloader.batch_size == batch, name
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch, name
    m = re.search(r'-(\d+)e_', name)
    if m:  # mmpretrain's ImageNet names leave the epochs out
        assert cfg.train_cfg.max_epochs == int(m.group(1)), name
