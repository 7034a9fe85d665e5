"""Activation checkpointing of the units (``with_cp=True``): the same
outputs and gradients as holding the activations, and less peak memory in
a training step."""
import copy

import pytest
import torch

from projects.benchmarks.benchmark_utils import PeakMemory, release_heap
from sparseformer_mm.archs import btsp_arch
from sparseformer_mm.models import SparseFormer, VideoSparseFormer

NANO = dict(num_tokens=16, focus_dims=64, cortex_dims=128, cortex_depth=3,
            num_points=16)
# a class token (and, in video, its key bias over R replicas)
BTSP_NANO = btsp_arch(16, 64, 128, 2)


def _grads(model, x, seed=1):
    """Tokens and every parameter's gradient of one backward (drop-path
    masks drawn from ``seed``)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    (tokens, ) = model(x)
    (tokens.square().mean() + tokens.mean()).backward()
    return tokens.detach(), {n: p.grad.clone()
                             for n, p in model.named_parameters()
                             if p.grad is not None}


@pytest.mark.parametrize('cls, arch, shape', [
    (SparseFormer, NANO, (2, 3, 32, 32)),
    (VideoSparseFormer, NANO, (2, 3, 2, 32, 32)),
    (VideoSparseFormer, BTSP_NANO, (2, 3, 2, 32, 32)),
], ids=['image', 'video', 'video-cls-token'])
def test_gradients_equal_the_held_activations(cls, arch, shape):
    kwargs = dict(replicates=2) if cls is VideoSparseFormer else {}
    plain = cls(arch=arch, num_heads=4, drop_path_rate=0.3, **kwargs).train()
    ckpt = copy.deepcopy(plain)
    ckpt.with_cp = True
    x = torch.randn(*shape)
    ref_tokens, ref = _grads(plain, x)
    tokens, got = _grads(ckpt, x)
    # drop path is on: equal only if the recompute redraws the same masks
    torch.testing.assert_close(tokens, ref_tokens, rtol=1e-5, atol=1e-6)
    assert set(got) == set(ref) and len(ref) > 10
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4,
                                   atol=1e-6, msg=lambda m: f'{name}: {m}')
    # the RoI and offset heads start at zero: their gradient must be real
    assert ref['initial_roi.weight'].abs().sum() > 0


def test_no_checkpointing_without_gradients():
    m = VideoSparseFormer(arch=BTSP_NANO, replicates=2, with_cp=True).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        (tokens, ) = m(x)
        trace = m(x, return_trace=True)  # the trace is made in the forward
    m.with_cp = False
    with torch.no_grad():
        (ref, ) = m(x)
    torch.testing.assert_close(tokens, ref)
    torch.testing.assert_close(trace['tokens'], ref)
    assert len(trace['passes']) == 5  # focusing x4, bridge


def _train_peak(model, x):
    optimizer = torch.optim.AdamW(model.parameters())
    release_heap()
    with PeakMemory(torch.device('cpu'), interval=0.005) as mem:
        (tokens, ) = model(x)
        tokens.square().mean().backward()
        optimizer.step()
    del tokens, optimizer
    model.zero_grad(set_to_none=True)
    release_heap()
    return mem.peak


@pytest.mark.slow
def test_checkpointing_lowers_the_training_peak():
    # many tokens on a small clip: the units' activations outweigh the stem's
    arch = dict(NANO, num_tokens=64, num_points=36)
    model = VideoSparseFormer(arch=arch, num_heads=4, replicates=2).train()
    x = torch.randn(2, 3, 2, 32, 32)
    _train_peak(model, x)  # allocator and thread pools warmed up
    held = _train_peak(model, x)
    model.with_cp = True
    ckpt = _train_peak(model, x)
    assert ckpt < 0.7 * held, (held / 2**20, ckpt / 2**20)
