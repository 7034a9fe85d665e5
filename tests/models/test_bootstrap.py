"""Bootstrapping a SparseFormer from a ViT teacher through the real Runner,
without labels (tiny models on generated shapes)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from data_helpers import make_shape_dataset
from sparseformer_mm.archs import btsp_arch

TEACHER = dict(
    type='ImageClassifier',
    backbone=dict(type='VisionTransformer', img_size=32, patch_size=8,
                  arch=dict(embed_dims=128, num_layers=6, num_heads=2,
                            feedforward_channels=256),
                  out_type='cls_token', final_norm=True),
    head=dict(type='VisionTransformerClsHead', num_classes=4,
              in_channels=128))


def config(root, work_dir):
    arch = btsp_arch(8, 64, 128, 4)
    student = dict(
        type='ImageClassifier',
        backbone=dict(type='SparseFormer', arch=arch),
        neck=dict(type='TokenPooling', in_channels=128, eps=1e-5,
                  pool='cls'),
        head=dict(type='LinearClsHead', num_classes=4, in_channels=128))
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(32, 32)),
                dict(type='PackInputs')]
    loader = dict(batch_size=16, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  dataset=dict(type='CustomDataset', data_root=root,
                               data_prefix='train', pipeline=pipeline))
    return Config(dict(
        default_scope='mmpretrain',
        model=dict(type='BootstrapDistiller', student=student,
                   teacher=TEACHER,
                   data_preprocessor=dict(
                       type='ClsDataPreprocessor', mean=[127.5] * 3,
                       std=[127.5] * 3, to_rgb=True)),
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=2e-3)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook',
                                           interval=3)),
        randomness=dict(seed=0),
        log_level='WARNING'))


def test_bootstrapping_trains_the_student_towards_a_frozen_teacher(tmp_path):
    make_shape_dataset(str(tmp_path / 'shapes'), num_train=12, num_val=1)
    from mmpretrain.registry import MODELS
    torch.manual_seed(1)
    teacher = MODELS.build(TEACHER)
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'vit.pth')
    cfg = config(str(tmp_path / 'shapes'), str(tmp_path / 'work'))
    cfg.model.teacher_checkpoint = str(tmp_path / 'vit.pth')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()  # what train() does first; then keep these
    model.init_weights = lambda: None
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    # the last half of the inherited blocks (the ViT's last third), the
    # final norm and the head are frozen; the teacher too
    bb = model.student.backbone
    assert model.frozen_layers == [len(bb.layers) - 2, len(bb.layers) - 1]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if not p.requires_grad}
    assert any(n.startswith('teacher.') for n in frozen)
    assert any(n.startswith('student.neck.') for n in frozen)
    tuned = f'student.backbone.layers.{len(bb.layers) - 3}.attn.qkv.weight'
    assert tuned not in frozen
    before = copy.deepcopy(model.student.state_dict())

    x = torch.randn(8, 3, 32, 32)

    def gap():
        model.eval()
        with torch.no_grad():
            return model.alignment_loss(model.student_representation(x),
                                        model.teacher_representation(x))

    start = gap()
    runner.train()
    assert gap() < 0.8 * start  # the student moved towards the teacher
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    after = model.student.state_dict()
    assert not torch.equal(after['backbone.' + tuned[len('student.'
                                                          'backbone.'):]],
                           before['backbone.' + tuned[len('student.'
                                                          'backbone.'):]])
    assert not torch.equal(after['backbone.layers.0.roi_offset_bias'],
                           before['backbone.layers.0.roi_offset_bias'])
    # predict goes through the student with the teacher's head
    preds = model(x, mode='predict')
    assert len(preds) == 8 and preds[0].pred_score.shape == (4, )


def test_a_bootstrapping_checkpoint_seeds_the_video_model(tmp_path):
    """``model.backbone.pretrained`` takes a bootstrapping run's checkpoint
    (a BootstrapDistiller's state dict): the student's backbone, inflated;
    on a static clip the video backbone then gives the student's output."""
    from mmpretrain.registry import MODELS

    from sparseformer_mm.models import VideoSparseFormer
    cfg = config(str(tmp_path), str(tmp_path / 'work'))
    torch.manual_seed(0)
    distiller = MODELS.build(cfg.model)
    for p in distiller.student.parameters():  # not the reference init
        p.data.add_(0.01 * torch.randn_like(p))
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': distiller.state_dict()}, path)
    arch = cfg.model.student.backbone.arch
    video = VideoSparseFormer(arch=arch, replicates=2, pretrained=str(path))
    video.init_weights()
    student = distiller.student.backbone.eval()
    video.eval()
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        want = student(img)[-1]
        got = video(img.unsqueeze(2).expand(-1, -1, 4, -1, -1))[-1]
    assert want.shape == got.shape[:1] + want.shape[1:]
    # the class token (first) as the image model computes it
    torch.testing.assert_close(got[:, 0], want[:, 0], atol=1e-4, rtol=0)
    # a file with no student says so, with its keys
    torch.save({'state_dict': {'teacher.x': torch.zeros(1)}},
               tmp_path / 'other.pth')
    with pytest.raises(ValueError, match=r"not a SparseFormer checkpoint.*"
                       r"first keys are \['teacher.x'\]"):
        VideoSparseFormer(arch=arch, replicates=2,
                          pretrained=str(tmp_path / 'other.pth')).init_weights()


# --------------------------------------------------------------------------
# What the student and the teacher start from (issue 23 item 2)
# --------------------------------------------------------------------------
def _vit_file(path, num_layers):
    """A teacher ViT of ``num_layers`` blocks, saved as mmpretrain does."""
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(TEACHER)
    cfg['backbone']['arch']['num_layers'] = num_layers
    torch.save({'state_dict': MODELS.build(cfg).state_dict()}, path)
    return str(path)


def _convert(vit, out):
    """The student's initial weights, by tools/model_converters (run as a
    user runs it: the script imports the modules beside it by name)."""
    import os.path as osp
    import subprocess
    import sys
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    res = subprocess.run(
        [sys.executable, 'tools/model_converters/vit_to_sparseformer.py',
         vit, str(out), '--num-tokens', '8', '--focus-dims', '64',
         '--source-heads', '2'], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return str(out)


def _student_run(tmp_path, name, teacher, student_init):
    make_shape_dataset(str(tmp_path / 'shapes'), num_train=4, num_val=1)
    cfg = config(str(tmp_path / 'shapes'), str(tmp_path / name))
    cfg.train_cfg.max_epochs = 1
    cfg.model.teacher_checkpoint = teacher
    cfg.model.student.init_cfg = dict(type='Pretrained',
                                      checkpoint=student_init)
    cfg.custom_hooks = [dict(type='CheckpointLoadHook')]  # as the runtimes
    cfg.experiment_name = name
    return Runner.from_cfg(cfg)


@pytest.fixture(scope='module')
def vits(tmp_path_factory):
    """A 6-block teacher ViT, the student init converted from it and one
    converted from a 3-block ViT: built once for the tests below."""
    d = tmp_path_factory.mktemp('vits')
    six = _vit_file(d / 'vit6.pth', 6)
    return dict(six=six, good=_convert(six, d / 'init6.pth'),
                wrong=_convert_in_process(_vit_file(d / 'vit3.pth', 3),
                                          d / 'init3.pth'))


def _convert_in_process(vit, out):
    """What ``_convert`` does, by the script's ``main`` in this process
    (no interpreter start)."""
    import importlib.util
    import os.path as osp
    helper = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                      'tools', 'model_converters', 'converter_modules.py')
    spec = importlib.util.spec_from_file_location('_converter_modules',
                                                  helper)
    modules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(modules)
    modules.load_module('vit_to_sparseformer').main(
        [vit, str(out), '--num-tokens', '8', '--focus-dims', '64',
         '--source-heads', '2'])
    return str(out)


def test_a_student_initialised_from_another_vit_depth_stops(tmp_path,
                                                            vits):
    """The config's student inherits 4 blocks of a 6-block ViT; its init
    checkpoint was converted from a 3-block ViT: the frozen blocks would
    stay random (mmengine loads init_cfg non-strictly), so the run stops
    before training, naming the key and the converter."""
    from sparseformer_mm.checkpoint_fit import CheckpointMismatchError
    six, good, wrong = vits['six'], vits['good'], vits['wrong']
    runner = _student_run(tmp_path, 'wrong', six, wrong)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.train()
    msg = str(info.value)
    assert f"model.student.init_cfg=dict(type='Pretrained', checkpoint=" \
        f'{wrong}) leaves ' in msg, msg
    assert 'frozen or inherited parameter(s) unloaded' in msg
    assert 'vit_to_sparseformer.py' in msg and '--arch' in msg
    # converted from the teacher itself: it trains, from those weights
    runner = _student_run(tmp_path, 'good', six, good)
    runner.train()
    init = torch.load(good, weights_only=True)['state_dict']
    bb = runner.model.student.backbone
    last = f'backbone.layers.{len(bb.layers) - 1}.attn.qkv.weight'
    assert torch.equal(runner.model.student.state_dict()[last], init[last])


def test_the_teacher_must_be_given_and_exist(tmp_path, vits):
    init = vits['good']
    with pytest.raises(ValueError, match='model.teacher_checkpoint is not '
                       'set: the teacher would be randomly initialised'):
        _student_run(tmp_path, 'none', None, init).train()
    gone = str(tmp_path / 'teacher_gone.pth')
    with pytest.raises(FileNotFoundError,
                       match=f"model.teacher_checkpoint={gone}: the "
                       "teacher's checkpoint does not exist"):
        _student_run(tmp_path, 'gone', gone, init).train()
