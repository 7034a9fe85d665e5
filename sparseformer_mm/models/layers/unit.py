"""The SparseFormer unit: a list of ops applied to latent tokens and their RoIs.

One implementation serves images (``ndim=2``: boxes, bilinear sampling) and
video (``ndim=3``: tubes, trilinear sampling).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import grid_init_offsets, make_sampling_points, roi_adjust
from .sampling import sample_points

OPS = ('attn', 'roi_adj', 'sampling', 'mlp')
FOCUS_OPS = ('attn', 'roi_adj', 'sampling', 'mlp')
CORTEX_OPS = ('attn', 'mlp')


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Per-sample stochastic depth on a ``(B, ...)`` tensor."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention among tokens (qkv packed as q, k, v)."""

    def __init__(self, embed_dims: int, num_heads: int = 64):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SparseFormerUnit(nn.Module):
    """A unit of ops, optionally applied ``repeats`` times with shared weights.

    Args:
        embed_dims (int): token width.
        ops (Sequence[str]): ops in order, from ``'attn'``, ``'roi_adj'``,
            ``'sampling'``, ``'mlp'``.
        ndim (int): spatial dimensions of RoIs: 2 (boxes) or 3 (tubes).
            Defaults to 2.
        feat_channels (int): channels of the sampled feature map.
            Defaults to 96.
        num_points (int): sampling points per token. Defaults to 36.
        num_heads (int): attention heads. Defaults to 64.
        mlp_ratio (int): MLP hidden ratio. Defaults to 4.
        repeats (int): times the unit is applied. Defaults to 1.
        drop_path (float | Sequence[float]): stochastic depth rate, one per
            repeat. Defaults to 0.
        eps (float): LayerNorm eps. Defaults to 1e-6.
        clip_sampling_grad (bool): clip the gradient reaching sampling
            coordinates to one feature cell (scaled by the AMP loss scale).
            Defaults to True.
        padding_mode (str): feature sampling padding. Defaults to 'zeros'.
    """

    def __init__(self,
                 embed_dims: int,
                 ops: Sequence[str] = CORTEX_OPS,
                 ndim: int = 2,
                 feat_channels: int = 96,
                 num_points: int = 36,
                 num_heads: int = 64,
                 mlp_ratio: int = 4,
                 repeats: int = 1,
                 drop_path: Union[float, Sequence[float]] = 0.0,
                 eps: float = 1e-6,
                 clip_sampling_grad: bool = True,
                 padding_mode: str = 'zeros'):
        super().__init__()
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f'unknown ops {unknown}; choose from {OPS}')
        if ndim not in (2, 3):
            raise ValueError(f'ndim must be 2 or 3, got {ndim}')
        self.embed_dims = embed_dims
        self.ops = tuple(ops)
        self.ndim = ndim
        self.num_points = num_points
        self.repeats = repeats
        if isinstance(drop_path, (int, float)):
            drop_path = [float(drop_path)] * repeats
        if len(drop_path) != repeats:
            raise ValueError(f'{len(drop_path)} drop-path rates for '
                             f'{repeats} repeats')
        self.drop_path_rates = [float(p) for p in drop_path]
        self.clip_sampling_grad = clip_sampling_grad
        self.padding_mode = padding_mode

        if 'attn' in ops:
            self.norm1 = nn.LayerNorm(embed_dims, eps=eps)
            self.attn = Attention(embed_dims, num_heads)
        if 'roi_adj' in ops:
            self.roi_adjust_module = nn.Sequential(
                nn.LayerNorm(embed_dims, eps=eps),
                nn.Linear(embed_dims, 2 * ndim, bias=False))
        if 'sampling' in ops:
            self.roi_offset_module = nn.Sequential(
                nn.LayerNorm(embed_dims, eps=eps),
                nn.Linear(embed_dims, num_points * ndim, bias=False))
            self.roi_offset_bias = nn.Parameter(torch.zeros(num_points * ndim))
            self.adaptive_mixing = AdaptiveMixing(
                embed_dims, feat_channels, num_points)
        if 'mlp' in ops:
            self.norm2 = nn.LayerNorm(embed_dims, eps=eps)
            self.mlp = Mlp(embed_dims, embed_dims * mlp_ratio)

    @torch.no_grad()
    def reset_special(self) -> None:
        """Reference init of the heads that move RoIs and points (applied
        after the generic Linear/LayerNorm init)."""
        heads = []
        if 'roi_adj' in self.ops:
            heads.append(self.roi_adjust_module)
        if 'sampling' in self.ops:
            heads.append(self.roi_offset_module)
            self.roi_offset_bias.copy_(
                grid_init_offsets(self.num_points, self.ndim))
            self.adaptive_mixing.reset_special()
        for norm, linear in heads:
            norm.weight.fill_(self.embed_dims ** -0.5)
            norm.bias.zero_()
            linear.weight.zero_()

    def _sample_and_mix(self, feat: Tensor, tokens: Tensor, rois: Tensor,
                        loss_scale: float):
        offset = self.roi_offset_module(tokens) + self.roi_offset_bias
        points = make_sampling_points(rois, offset)
        sampled = sample_points(
            feat, points, clip_grad=self.clip_sampling_grad and self.training,
            loss_scale=loss_scale, padding_mode=self.padding_mode)
        return self.adaptive_mixing(sampled, tokens), points

    def forward(self,
                feat: Tensor,
                tokens: Tensor,
                rois: Tensor,
                loss_scale: float = 1.0,
                trace: Optional[List[dict]] = None):
        """Apply the unit ``repeats`` times.

        Args:
            feat (Tensor): stem features ``(B, C, [T,] H, W)``.
            tokens (Tensor): ``(B, N, d)``.
            rois (Tensor): ``(B, N, 2*ndim)`` corners.
            loss_scale (float): AMP loss scale for the coordinate-grad clip.
            trace (list, optional): if given, one dict with the ``rois`` and
                sampling ``points`` of each sampling pass is appended.

        Returns:
            tuple[Tensor, Tensor]: updated tokens and RoIs.
        """
        for p in self.drop_path_rates:
            for op in self.ops:
                if op == 'attn':
                    tokens = tokens + drop_path(
                        self.attn(self.norm1(tokens)), p, self.training)
                elif op == 'mlp':
                    tokens = tokens + drop_path(
                        self.mlp(self.norm2(tokens)), p, self.training)
                elif op == 'roi_adj':
                    delta = drop_path(self.roi_adjust_module(tokens), p,
                                      self.training)
                    rois = roi_adjust(rois, delta)
                else:  # sampling
                    mixed, points = self._sample_and_mix(
                        feat, tokens, rois, loss_scale)
                    tokens = tokens + drop_path(mixed, p, self.training)
                    if trace is not None:
                        trace.append(dict(rois=rois.detach(),
                                          points=points.detach()))
        return tokens, rois
