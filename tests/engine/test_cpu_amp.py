"""Mixed precision on the CPU (``AmpOrFp32OptimWrapper(amp='cpu')``): the
AMP step a GPU run executes (autocast fp16 / bf16, a dynamic GradScaler,
the loss scale handed to the sampling-gradient clip, skipped overflowing
steps, the scaler in checkpoints), run here on ``torch.autocast('cpu')``
and ``torch.amp.GradScaler('cpu')`` through the real Runner."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner
from torch.utils.data import Dataset

import sparseformer_mm.engine.optim_wrappers as optim_wrappers
from data_helpers import make_motion_dataset
from sparseformer_mm.archs import btsp_arch
from sparseformer_mm.checkpoint_safety import load_weights_only
from sparseformer_mm.engine import AmpOrFp32OptimWrapper
from sparseformer_mm.models import build_classifier
from toy_models import TinyRegressor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NANO = dict(num_tokens=4, focus_dims=64, cortex_dims=64, cortex_depth=1,
            num_points=4)
DTYPES = ['float16', 'bfloat16']


def _wrapper(params, **kwargs):
    return OPTIM_WRAPPERS.build(dict(
        type='AmpOrFp32OptimWrapper', optimizer=torch.optim.SGD(params,
                                                                lr=0.1),
        **kwargs))


# -- building ----------------------------------------------------------------
@pytest.mark.parametrize('dtype', [None] + DTYPES)
def test_amp_cpu_builds_the_cpu_scaler_and_autocast(dtype):
    w = torch.nn.Parameter(torch.ones(2))
    wrapper = _wrapper([w], amp='cpu', dtype=dtype,
                       loss_scale=dict(init_scale=2.**8))
    assert isinstance(wrapper, AmpOrFp32OptimWrapper)
    assert wrapper.amp and wrapper.device == 'cpu'
    assert isinstance(wrapper.loss_scaler, torch.amp.GradScaler)
    assert wrapper.loss_scaler.is_enabled() and wrapper.loss_scale == 2.**8
    expected = getattr(torch, dtype or 'float16')
    assert wrapper.cast_dtype is expected
    seen = []
    with wrapper.optim_context(torch.nn.Linear(2, 2)):
        seen.append((torch.is_autocast_enabled('cpu'),
                     torch.get_autocast_dtype('cpu')))
        out = torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2))
    assert seen == [(True, expected)] and out.dtype is expected
    assert not torch.is_autocast_enabled('cpu')


def test_loss_scale_forms_are_mmengines():
    assert optim_wrappers.grad_scaler('dynamic', 'cpu')[0].get_scale() \
        == 2.**16
    scaler, fixed = optim_wrappers.grad_scaler(8.0, 'cpu')
    assert (scaler.get_scale(), fixed) == (8.0, 8.0)
    scaler, fixed = optim_wrappers.grad_scaler(
        dict(init_scale=4., growth_interval=3), 'cpu')
    assert (scaler.get_scale(), scaler.get_growth_interval(), fixed) == \
        (4., 3, None)
    with pytest.raises(TypeError, match="'dynamic', a number or a dict"):
        optim_wrappers.grad_scaler('static', 'cpu')
    with pytest.raises(ValueError, match="amp must be 'auto', True, False "
                       "or 'cpu', got 'gpu'"):
        _wrapper([torch.nn.Parameter(torch.ones(2))], amp='gpu')
    with pytest.raises(ValueError, match='dtype must be one of'):
        _wrapper([torch.nn.Parameter(torch.ones(2))], amp='cpu',
                 dtype='half')


def test_an_accelerator_gets_the_same_step_on_its_device(monkeypatch):
    """With a GPU (pretended: none is here) ``amp='auto'`` is the same
    code on 'cuda': its GradScaler (disabled on this machine, so it only
    shows its device) and autocast there."""
    monkeypatch.setattr(optim_wrappers, 'amp_available', lambda: True)
    monkeypatch.setattr(optim_wrappers, 'get_device', lambda: 'cuda')
    with pytest.warns(UserWarning):  # torch: CUDA is not available
        wrapper = _wrapper([torch.nn.Parameter(torch.ones(2))])
    assert wrapper.amp and wrapper.device == 'cuda'
    assert isinstance(wrapper.loss_scaler, torch.amp.GradScaler)
    assert wrapper.loss_scaler._device == 'cuda'
    # a model left on the CPU would silently run fp32: refused
    with pytest.raises(RuntimeError, match="autocasts on 'cuda' but the "
                       'model is on cpu'):
        with wrapper.optim_context(torch.nn.Linear(2, 2)):
            pass


# -- the loss scale reaches the sampling-gradient clip ----------------------
def _grads(amp, dtype=None, scale=1.0, blind=False):
    """Unscaled gradients of one AMP (or fp32) step of a nano SparseFormer
    whose RoI offsets are large enough for the coordinate clip to bind.
    ``blind``: the backbone is told scale 1 whatever the loss scale."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32) * 3
    model = build_classifier(NANO, 3).train()
    with torch.no_grad():
        model.backbone.layers[0].roi_offset_module[1].weight.normal_(0, 1)
    wrapper = _wrapper(list(model.parameters()), amp=amp, dtype=dtype,
                       loss_scale=dict(init_scale=scale))
    with wrapper.optim_context(model):
        if blind:
            model.backbone.set_loss_scale(1.0)
        logits = model(x, mode='tensor')
    wrapper.backward(logits.float().square().sum() * 1e2)
    if wrapper.amp:
        wrapper.loss_scaler.unscale_(wrapper.optimizer)
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    return grads['backbone.initial_roi.weight']


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('dtype,tol', [('float16', 1e-2),
                                       ('bfloat16', 0.3)])
def test_amp_clipped_gradient_equals_fp32(dtype, tol):
    """The RoI gradient passes the clip: under AMP with scale S it is the
    fp32 one (within the dtype's precision) only because the wrapper told
    the backbone S; told 1 instead, the clip cuts the S-times larger
    gradients and the result is far off."""
    fp32 = _grads(False)
    s1 = _grads('cpu', dtype, scale=1.0)
    told = _grads('cpu', dtype, scale=2.**4)
    blind = _grads('cpu', dtype, scale=2.**4, blind=True)
    assert _rel(told, fp32) < tol
    assert _rel(blind, fp32) > 0.5
    # power-of-two scaling is exact in both dtypes: the same as scale 1
    torch.testing.assert_close(told, s1, rtol=1e-6, atol=0)


# -- overflow and resume, in real Runner runs --------------------------------
class Spike(Dataset):
    """``x = (i / 8, 1)``, except at ``spike_at``: ``x = (200, 1)``, whose
    fp16 output gradient times the loss scale overflows (the loss itself,
    about 1e4, is finite)."""

    def __init__(self, n=6, spike_at=()):
        self.n, self.spike_at = n, set(spike_at)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.tensor([200.0 if i in self.spike_at else i / 8, 1.0])
        return dict(inputs=x, labels=torch.tensor([0.5]))


def _run(work_dir, spike_at=(), max_iters=6, resume=False,
         init_scale=2.**10):
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Spike(6, spike_at), batch_size=1, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            type='AmpOrFp32OptimWrapper', amp='cpu', dtype='float16',
            loss_scale=dict(init_scale=init_scale, growth_interval=3),
            optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(
            type='SafeCheckpointHook', interval=1, by_epoch=False,
            backend_args=dict(backend='atomic_local'))),
        resume=resume, log_level='WARNING',
        experiment_name=osp.basename(str(work_dir)) + str(resume))


def _ckpt(work_dir, it):
    return load_weights_only(osp.join(work_dir, f'iter_{it}.pth'))


def test_overflowing_step_is_skipped_and_the_scale_drops(tmp_path):
    runner = _run(tmp_path, spike_at=[2], max_iters=4)
    runner.train()
    scales = [_ckpt(tmp_path, i)['optimizer']['loss_scaler']['scale']
              for i in range(1, 5)]
    # iteration 3 overflowed: halved; 3 good steps after it would regrow
    assert scales == [2.**10, 2.**10, 2.**9, 2.**9], scales
    w2, w3 = _ckpt(tmp_path, 2)['state_dict'], _ckpt(tmp_path, 3)['state_dict']
    for k in w2:
        assert torch.equal(w2[k], w3[k]), k  # the step did not happen
    w4 = _ckpt(tmp_path, 4)['state_dict']
    assert not torch.equal(w3['fc.weight'], w4['fc.weight'])
    assert all(torch.isfinite(v).all() for v in w4.values())
    # not a non-finite loss: the wrapper's own skip policy stayed out
    assert runner.optim_wrapper.skipped == []


def test_resume_restores_the_scaler(tmp_path):
    """Resumed after iteration 4 (scale 2^9 after the overflow, growth
    tracker 1), with another init_scale in the config: the checkpoint's
    scaler state wins, and the scale grows back at iteration 6 exactly as
    in the run that was not interrupted."""
    whole = _run(tmp_path / 'whole', spike_at=[2])
    whole.train()
    _run(tmp_path / 'cut', spike_at=[2], max_iters=4).train()
    state = _ckpt(tmp_path / 'cut', 4)['optimizer']['loss_scaler']
    assert (state['scale'], state['_growth_tracker']) == (2.**9, 1)
    resumed = _run(tmp_path / 'cut', spike_at=[2], resume=True,
                   init_scale=2.**3)
    resumed.train()
    a = resumed.optim_wrapper.loss_scaler.state_dict()
    b = whole.optim_wrapper.loss_scaler.state_dict()
    assert a == b and a['scale'] == 2.**10, (a, b)
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v)


# -- the configs train under CPU AMP -----------------------------------------
def _video_cfg(path, root, work_dir, dtype, clip_len=None):
    """``path`` trained on the generated clips at ``root``, one epoch,
    under CPU AMP in ``dtype``, no validation."""
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({
        'optim_wrapper.amp': 'cpu', 'optim_wrapper.dtype': dtype,
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file':
            f'{root}/kinetics400_train_list_videos.txt',
        'train_dataloader.dataset.data_prefix.video': f'{root}/videos_train',
        'model.backbone.pretrained': None, 'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1})
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.work_dir = str(work_dir)
    return cfg


def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    records = [json.loads(line) for line in open(glob.glob(
        osp.join(cfg.work_dir, '*/vis_data/scalars.json'))[0])]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    wrapper = runner.optim_wrapper
    assert wrapper.device == 'cpu' and \
        wrapper.cast_dtype is getattr(torch, cfg.optim_wrapper.dtype)
    # the backbone was told the scale of the last step (no overflow here:
    # still the config's initial scale)
    init = cfg.optim_wrapper.loss_scale['init_scale']
    assert runner.model.backbone.loss_scale == wrapper.loss_scale == init
    return runner


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """4 generated clips (one per class), 32 frames of 32x32."""
    root = str(tmp_path_factory.mktemp('clips'))
    make_motion_dataset(root, num_train=1, num_val=1, size=32,
                        num_frames=32, seed=0)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('dtype', DTYPES)
def test_video_demo_config_trains_under_cpu_amp(tmp_path, clips, dtype):
    _train(_video_cfg(osp.join(
        REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'),
        clips, tmp_path, dtype))


@pytest.mark.slow
@pytest.mark.parametrize('dtype', ['bfloat16'])
def test_k400_tiny_config_trains_under_cpu_amp(tmp_path, clips, dtype):
    # the headline config's model, optimizer and runtime (R = 8); clips of
    # 4 x 64^2 instead of 32 x 224^2; two iterations of one clip each.
    # bf16 only: CPU fp16 is emulated (2.5 min for these two steps); the
    # fp16 scaler path trains the demo and bootstrapped configs above and
    # below, and K400 in fp16 on a GPU in tools/gpu_check.py
    cfg = _video_cfg(osp.join(REPO, 'configs/k400.py'), clips, tmp_path,
                     dtype)
    _shrink_clips(cfg, clip_len=4, size=64)
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.dataset.indices = 2
    _train(cfg)


def _shrink_clips(cfg, clip_len, size):
    pipeline = cfg.train_dataloader.dataset.pipeline
    for t in pipeline:
        if t['type'] == 'SampleFrames':
            t.update(clip_len=clip_len, frame_interval=2)
    assert pipeline[-4]['type'] == 'Resize'  # the crop's final size
    pipeline[-4]['scale'] = (size, size)
    cfg.train_dataloader.dataset.min_frames = clip_len


@pytest.mark.slow
@pytest.mark.parametrize('dtype', DTYPES)
def test_bootstrapped_video_config_trains_under_cpu_amp(tmp_path, clips,
                                                        dtype):
    path = glob.glob(osp.join(
        REPO, 'configs/videosparseformer/videosparseformer-btsp-clip-base_*'
        '.py'))[0]
    cfg = _video_cfg(path, clips, tmp_path, dtype)
    # a tiny bootstrapped (CLIP-style: class token) arch
    cfg.model.backbone.update(arch=btsp_arch(4, 64, 64, 2, clip=True),
                              replicates=2)
    cfg.model.neck.in_channels = cfg.model.cls_head.in_channels = 64
    _shrink_clips(cfg, clip_len=8, size=64)
    runner = _train(cfg)
    assert runner.model.backbone.cls_token_layer is not None
