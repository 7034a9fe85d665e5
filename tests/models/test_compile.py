"""``torch.compile(fullgraph=True)`` of the backbones, held against eager.

Compiled with dynamo's ``aot_eager`` backend: the whole forward is traced
without a graph break (``fullgraph``) and AOTAutograd derives the backward
(through the custom ``ClipCoordGrad``), which is all the model code
decides; inductor's code generation (the default backend) takes one to
four minutes a graph on a 2-core CPU. ``SPARSEFORMER_TEST_INDUCTOR=1`` runs
the same cases with inductor (about 15 minutes), the model-level ones in
float64: in fp32 its own sin/cos and summation order move the gradients
that flow through the RoI encodings by up to ~2e-5 of their largest value.
"""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from data_helpers import make_shape_dataset
from sparseformer_mm.archs import (BTSP_BRIDGE_OPS, BTSP_FOCUS_OPS,
                                   BTSP_STAGE, CORTEX_OPS, FOCUS_OPS)
from sparseformer_mm.models import SparseFormer, VideoSparseFormer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
INDUCTOR = bool(os.environ.get('SPARSEFORMER_TEST_INDUCTOR'))
BACKEND = 'inductor' if INDUCTOR else 'aot_eager'
DTYPE = torch.float64 if INDUCTOR else torch.float32
# The Runner test checks the config switch end to end; the model-level tests
# hold the backward (AOTAutograd) against eager.
RUNNER_BACKEND = 'inductor' if INDUCTOR else 'eager'

# The first paper's layout (linear RoI head, mixing biases, GELU), small.
V1 = dict(num_tokens=4, num_points=4, stages=[
    dict(width=32, ops=FOCUS_OPS, repeats=2),
    dict(width=48, ops=CORTEX_OPS)])
# The bootstrapped family's: shared embedding, RoIs 'grid_rest_full', stage
# embeddings, pe_inject, MLP RoI head, bias-free mixing, a class token and
# QuickGELU; at toy widths, and with the sampling-gradient clip on (the
# released models train without it) so that the video path covers it too.
_BTSP = dict(BTSP_STAGE, head_dims=16, mixing_inner_dims=16,
             mixing_out_points=4, clip_sampling_grad=True)
BTSP = dict(num_tokens=5, num_points=4, feat_channels=16,
            shared_embedding=True, roi_init='grid_rest_full', stages=[
                dict(width=32, ops=BTSP_FOCUS_OPS, stage_embed=True,
                     **_BTSP),
                dict(width=48, ops=BTSP_BRIDGE_OPS, **_BTSP),
                dict(width=48, ops=CORTEX_OPS, cls_token=True,
                     mlp_act='quick_gelu', **_BTSP)])

CASES = {
    'image-v1': (SparseFormer, dict(arch=V1, num_heads=4), (2, 3, 32, 32)),
    'video-btsp': (VideoSparseFormer, dict(arch=BTSP, replicates=2),
                   (2, 3, 4, 32, 32)),
}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()  # no compiled code or recompile counts carried over
    yield
    torch._dynamo.reset()


def _model(case):
    cls, kwargs, shape = CASES[case]
    torch.manual_seed(0)
    model = cls(**kwargs)
    with torch.no_grad():  # offsets that move points: the clip binds below
        for unit in model.layers:
            if hasattr(unit, 'roi_offset_module'):
                unit.roi_offset_module[1].weight.normal_(0, 1)
    return model.to(DTYPE), (torch.randn(shape) * 3).to(DTYPE)


def _grads(model, out, scale=1.0):
    """Gradients of a fixed linear loss (its gradient does not depend on the
    output's rounding), large enough for the clip to bind."""
    model.zero_grad(set_to_none=True)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(
        1)).to(out.dtype)
    ((out * weights).sum() * 1e3 * scale).backward()
    return {n: p.grad / scale for n, p in model.named_parameters()
            if p.grad is not None}


def _close(actual, expected):
    """Within 1e-5 of the eager values, relative to each tensor's scale (a
    compiler may sum in another order; the gradients here reach ~1e3)."""
    scale = max(expected.abs().max().item(), 1.0)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize('case', list(CASES))
def test_eval_matches_eager(case):
    model, x = _model(case)
    x = x[:1]  # one sample: with 2+ threads its tokens are sampled in chunks
    model.eval()
    counter = CompileCounterWithBackend(BACKEND)
    compiled = torch.compile(model, fullgraph=True, dynamic=False,
                             backend=counter)
    with torch.no_grad():
        expected = model(x)[0]
        _close(compiled(x)[0], expected)
    assert counter.frame_count >= 1  # compiled (fullgraph: no graph break)


@pytest.mark.parametrize('case', list(CASES))
def test_train_matches_eager_and_follows_the_loss_scale(case):
    model, x = _model(case)
    model.train()
    counter = CompileCounterWithBackend(BACKEND)
    compiled = torch.compile(model, fullgraph=True, dynamic=False,
                             backend=counter)
    g = 2.**10  # a fp16 loss scale: the clip bound must scale with it
    for scale in (1.0, g):
        model.set_loss_scale(scale)
        out = compiled(x)[0]
        if scale == 1.0:
            # (dynamo may call the backend twice for one graph)
            compiles = counter.frame_count
        _close(out, model(x)[0].detach())
        compiled_grads = _grads(model, out, scale)
        eager_grads = _grads(model, model(x)[0], scale)
        assert compiled_grads.keys() == eager_grads.keys()
        for name, grad in eager_grads.items():
            _close(compiled_grads[name], grad)
    # The new scale reached the compiled backward without a recompile ...
    assert counter.frame_count == compiles
    # ... and mattered: the clip binds here, so a clip blind to the scale
    # would have given other RoI gradients.
    model.set_loss_scale(1.0)
    blind = _grads(model, model(x)[0], g)['initial_roi.weight']
    told = eager_grads['initial_roi.weight']
    assert (blind - told).abs().max() > 1e-3 * told.abs().max()


def test_runner_trains_with_the_backbone_compiled(tmp_path):
    """``model.backbone.compile`` through a real Runner run (training with
    AmpOrFp32OptimWrapper and the demo's hooks, then validation and its RoI
    pictures): the same losses and accuracy as the eager run, one graph for
    training and one for inference, and checkpoints with the same keys."""
    data = tmp_path / 'shapes'
    make_shape_dataset(str(data), num_train=4, num_val=1, size=32, seed=1)

    def run(name, compile_cfg):
        cfg = Config.fromfile(DEMO_CFG)
        cfg.model.backbone.arch = dict(num_tokens=4, num_points=4, stages=[
            dict(width=32, ops=FOCUS_OPS, repeats=2)])
        cfg.model.backbone.compile = compile_cfg
        cfg.model.neck.in_channels = cfg.model.head.in_channels = 32
        cfg.work_dir = str(tmp_path / name)
        for loader in (cfg.train_dataloader, cfg.val_dataloader):
            loader.dataset.data_root = str(data)
            loader.num_workers = 0
        cfg.train_dataloader.batch_size = 8
        cfg.optim_wrapper.type = 'AmpOrFp32OptimWrapper'
        cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
        cfg.default_hooks.logger.interval = 1
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        runner.train()
        losses = runner.message_hub.get_scalar('train/loss').data[0]
        acc = runner.message_hub.get_scalar('val/accuracy/top1').current()
        ckpt = torch.load(osp.join(cfg.work_dir, 'epoch_1.pth'),
                          weights_only=False)  # our own file
        return [float(v) for v in losses], acc, set(ckpt['state_dict'])

    eager_losses, eager_acc, eager_keys = run('eager', False)
    graphs = counters['stats']['unique_graphs']
    breaks = sum(counters['graph_break'].values())
    losses, acc, keys = run('compiled', dict(backend=RUNNER_BACKEND))
    assert len(losses) == 2
    torch.testing.assert_close(losses, eager_losses, rtol=1e-5, atol=1e-6)
    assert acc == eager_acc
    # training, then validation; the RoI pictures' trace runs eagerly
    assert counters['stats']['unique_graphs'] - graphs == 2
    assert sum(counters['graph_break'].values()) == breaks
    assert keys == eager_keys
