"""Parameters and FLOPs of SparseFormer models in both conventions.

The paper's counter (fvcore) skipped the batched matmuls of adaptive mixing
(``baddbmm``); "full" counts them. Both count a multiply-add as one FLOP, use
mmengine's ``FlopAnalyzer`` and add a handle for the fused attention kernel,
which the analyzer does not know.
"""
import math
from typing import Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def _sdpa_flops(inputs, outputs) -> int:
    """q @ k^T and attn @ v of ``scaled_dot_product_attention``."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _baddbmm_flops(inputs, outputs) -> int:
    a, b = get_shape(inputs[1]), get_shape(inputs[2])
    return a[0] * a[1] * a[2] * b[2]


class Logits(nn.Module):
    """Input -> logits for an mmpretrain classifier or mmaction2 recognizer."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        if hasattr(self.model, 'cls_head'):  # mmaction2 Recognizer3D
            feats, _ = self.model.extract_feat(x[:, None])
            return self.model.cls_head(feats)
        return self.model(x, mode='tensor')


def flop_analyzers(model: nn.Module, shape: Sequence[int]) -> dict:
    """FlopAnalyzers for one input of ``shape`` (without the batch axis), in
    the ``'paper'`` and ``'full'`` conventions."""
    wrapped = Logits(model.eval())
    x = torch.randn(1, *shape)
    out = {}
    for name, bmm in (('paper', None), ('full', _baddbmm_flops)):
        fa = FlopAnalyzer(wrapped, (x, ))
        fa.set_op_handle('aten::scaled_dot_product_attention', _sdpa_flops,
                         'aten::baddbmm', bmm)
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        out[name] = fa
    return out


def complexity(model: nn.Module, shape: Sequence[int]) -> dict:
    """``params`` and GFLOPs (``paper`` / ``full``) for one input view."""
    fas = flop_analyzers(model, shape)
    return dict(params=sum(p.numel() for p in model.parameters()),
                **{k: fa.total() / 1e9 for k, fa in fas.items()})


def default_shape(cfg):
    """(3, H, W) for images; (3, T, H, W) with the test clip length."""
    if cfg.default_scope == 'mmaction':
        pipeline = cfg.val_dataloader.dataset.pipeline
        clip = next(t['clip_len'] for t in pipeline
                    if t['type'] == 'SampleFrames')
        return [3, clip, 224, 224]
    return [3, 224, 224]
