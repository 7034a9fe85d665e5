"""The SparseFormer unit: a list of ops applied to latent tokens and their RoIs.

Ops live in a table, ``OPS``: name -> ``Op(build, apply, reset)``. ``build``
creates the op's modules on the unit (under the released weights' names),
``apply`` updates the running :class:`TokenState`, and ``reset`` gives the
op's modules their reference initialisation after the generic one. A new
kind of op is one function triple and one entry.

One implementation serves images (``ndim=2``: boxes, bilinear sampling) and
video (``ndim=3``: tubes, trilinear sampling).
"""
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...archs import CORTEX_OPS
from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import (grid_init_offsets, make_sampling_points,
                           roi_adjust, roi_sincos, tube_time_sincos)
from .sampling import sample_points



def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Per-sample stochastic depth on a ``(B, ...)`` tensor."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def quick_gelu(x: Tensor) -> Tensor:
    """CLIP's GELU approximation ``x * sigmoid(1.702 x)``."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {'gelu': F.gelu, 'quick_gelu': quick_gelu}


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

    def forward(self, x: Tensor, key_bias: Optional[Tensor] = None) -> Tensor:
        """``key_bias`` (``(N,)``, optional) is added to every query's
        attention logit for each key."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        mask = None if key_bias is None else key_bias.to(q.dtype).view(1, N)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """Linear -> activation (``'gelu'`` or ``'quick_gelu'``) -> Linear."""

    def __init__(self, embed_dims: int, hidden_dims: int, act: str = 'gelu'):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"mlp_act '{act}' is not one of "
                             f'{sorted(ACTIVATIONS)}')
        self.act = act
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(ACTIVATIONS[self.act](self.fc1(x)))


class TokenState:
    """What the ops of a unit read and update.

    Attributes:
        feat (Tensor): stem features ``(B, C, [T,] H, W)``.
        tokens (Tensor): ``(B, num_prefix + N, d)``; the first
            ``num_prefix`` are tokens without a RoI (a class token).
        rois (Tensor): ``(B, N, 2*ndim)`` corners of the latent tokens.
        loss_scale (float | Tensor): AMP loss scale for the coordinate-grad
            clip (the backbones pass a 0-dim tensor).
        trace (list, optional): per sampling pass, its ``rois`` and
            ``points``, when the caller asked for them.
        key_bias (Tensor, optional): ``(num_prefix + N,)`` added to the
            attention logits of each key (video: the class token counts as
            many times as the tokens are replicated).
    """

    def __init__(self, feat: Tensor, tokens: Tensor, rois: Tensor,
                 loss_scale: float = 1.0, trace: Optional[List[dict]] = None):
        self.feat, self.tokens, self.rois = feat, tokens, rois
        self.loss_scale, self.trace = loss_scale, trace
        self.num_prefix = 0
        self.key_bias = None

    @property
    def latent(self) -> Tensor:
        """The tokens that carry RoIs."""
        return self.tokens[:, self.num_prefix:] if self.num_prefix \
            else self.tokens

    def add_latent(self, update: Tensor) -> None:
        """Residual update of the RoI-carrying tokens only."""
        if self.num_prefix:
            prefix = self.tokens[:, :self.num_prefix]
            self.tokens = torch.cat([prefix, self.latent + update], dim=1)
        else:
            self.tokens = self.tokens + update


class Op(NamedTuple):
    """One kind of op: ``build(unit)``, ``apply(unit, state, drop_rate)``
    and an optional ``reset(unit)`` (reference init of its modules)."""
    build: Callable[['SparseFormerUnit'], None]
    apply: Callable[['SparseFormerUnit', TokenState, float], None]
    reset: Optional[Callable[['SparseFormerUnit'], None]] = None


def _norm(unit: 'SparseFormerUnit') -> nn.LayerNorm:
    return nn.LayerNorm(unit.embed_dims, eps=unit.eps)


def _reset_head(norm: nn.LayerNorm, last: nn.Linear, dims: int) -> None:
    """Heads that move RoIs and points start still: unit-norm LN, zero
    output weight."""
    norm.weight.fill_(dims ** -0.5)
    norm.bias.zero_()
    last.weight.zero_()


# attn: pre-LN multi-head self-attention, residual.
def _build_attn(unit):
    unit.norm1 = _norm(unit)
    unit.attn = Attention(unit.embed_dims, unit.num_heads)


def _apply_attn(unit, s, p):
    s.tokens = s.tokens + drop_path(
        unit.attn(unit.norm1(s.tokens), s.key_bias), p, unit.training)


# mlp: pre-LN MLP, residual.
def _build_mlp(unit):
    unit.norm2 = _norm(unit)
    unit.mlp = Mlp(unit.embed_dims, unit.embed_dims * unit.mlp_ratio,
                   unit.mlp_act)


def _apply_mlp(unit, s, p):
    s.tokens = s.tokens + drop_path(unit.mlp(unit.norm2(s.tokens)), p,
                                    unit.training)


# roi_adj: a head predicts 2*ndim deltas that move and rescale the RoIs.
def _build_roi_adj(unit):
    out = 2 * unit.ndim
    d = unit.embed_dims
    if unit.roi_adj_head == 'linear':
        layers = [_norm(unit), nn.Linear(d, out, bias=False)]
    elif unit.roi_adj_head == 'mlp':
        layers = [_norm(unit), nn.Linear(d, d), nn.GELU(),
                  nn.Linear(d, out, bias=False)]
    else:
        raise ValueError(f"roi_adj_head '{unit.roi_adj_head}' is not one of "
                         "['linear', 'mlp']")
    unit.roi_adjust_module = nn.Sequential(*layers)


def _apply_roi_adj(unit, s, p):
    delta = unit.roi_adjust_module(s.latent)
    if unit.roi_adj_head == 'linear':  # the reference drops the linear head
        delta = drop_path(delta, p, unit.training)
    s.rois = roi_adjust(s.rois, delta)


def _reset_roi_adj(unit):
    head = unit.roi_adjust_module
    _reset_head(head[0], head[-1], unit.embed_dims)


# sampling: points inside the RoI, features sampled there, decoded by
# adaptive mixing, residual.
def _build_sampling(unit):
    d, P = unit.embed_dims, unit.num_points
    unit.roi_offset_module = nn.Sequential(
        _norm(unit), nn.Linear(d, P * unit.ndim, bias=False))
    unit.roi_offset_bias = nn.Parameter(torch.zeros(P * unit.ndim))
    unit.adaptive_mixing = AdaptiveMixing(
        d, unit.feat_channels, P, inner_dims=unit.mixing_inner_dims,
        out_points=unit.mixing_out_points, bias=unit.mixing_bias)


def _apply_sampling(unit, s, p):
    latent = s.latent
    offset = unit.roi_offset_module(latent) + unit.roi_offset_bias
    points = make_sampling_points(s.rois, offset)
    sampled = sample_points(
        s.feat, points, clip_grad=unit.clip_sampling_grad and unit.training,
        loss_scale=s.loss_scale, padding_mode=unit.padding_mode)
    s.add_latent(drop_path(unit.adaptive_mixing(sampled, latent), p,
                           unit.training))
    if s.trace is not None:
        s.trace.append(dict(rois=s.rois.detach(), points=points.detach()))


def _reset_sampling(unit):
    _reset_head(unit.roi_offset_module[0], unit.roi_offset_module[1],
                unit.embed_dims)
    unit.roi_offset_bias.copy_(grid_init_offsets(unit.num_points, unit.ndim))
    unit.adaptive_mixing.reset_special()


# pe_inject: a sinusoidal encoding of the RoI's box, LN -> Linear, added.
# Tubes add their temporal extent through a second branch (pe_time) that
# starts at zero, so an inflated image model is unchanged until trained.
def _build_pe_inject(unit):
    d = unit.embed_dims
    unit.pe_transition = nn.Sequential(_norm(unit), nn.Linear(d, d))
    if unit.ndim == 3:
        unit.pe_time = nn.Sequential(_norm(unit), nn.Linear(d, d))


def _apply_pe_inject(unit, s, p):
    pe = unit.pe_transition(roi_sincos(s.rois, unit.embed_dims).to(
        s.tokens.dtype))
    if unit.ndim == 3:
        pe = pe + unit.pe_time(tube_time_sincos(
            s.rois, unit.embed_dims).to(s.tokens.dtype))
    s.add_latent(pe)


def _reset_pe_inject(unit):
    if unit.ndim == 3:
        unit.pe_time[1].weight.zero_()
        unit.pe_time[1].bias.zero_()


# Table order is build order: modules draw their default init from the
# global RNG when built, so a fixed seed gives the same weights as before.
OPS: Dict[str, Op] = {
    'attn': Op(_build_attn, _apply_attn),
    'roi_adj': Op(_build_roi_adj, _apply_roi_adj, _reset_roi_adj),
    'sampling': Op(_build_sampling, _apply_sampling, _reset_sampling),
    'mlp': Op(_build_mlp, _apply_mlp),
    'pe_inject': Op(_build_pe_inject, _apply_pe_inject, _reset_pe_inject),
}


class SparseFormerUnit(nn.Module):
    """A unit of ops, optionally applied ``repeats`` times with shared weights.

    Args:
        embed_dims (int): token width.
        ops (Sequence[str]): ops in order, keys of ``OPS``.
        ndim (int): spatial dimensions of RoIs: 2 (boxes) or 3 (tubes).
            Defaults to 2.
        feat_channels (int): channels of the sampled feature map.
            Defaults to 96.
        num_points (int): sampling points per token. Defaults to 36.
        num_heads (int): attention heads. Defaults to 64.
        mlp_ratio (int): MLP hidden ratio. Defaults to 4.
        mlp_act (str): ``'gelu'`` or ``'quick_gelu'``. Defaults to 'gelu'.
        repeats (int): times the unit is applied. Defaults to 1.
        drop_path (float | Sequence[float]): stochastic depth rate, one per
            repeat. Defaults to 0.
        eps (float): LayerNorm eps. Defaults to 1e-6.
        clip_sampling_grad (bool): clip the gradient reaching sampling
            coordinates to one feature cell (scaled by the AMP loss scale).
            Defaults to True.
        padding_mode (str): feature sampling padding. Defaults to 'zeros'.
        roi_adj_head (str): ``'linear'`` (LN -> Linear) or ``'mlp'``
            (LN -> Linear -> GELU -> Linear, no drop-path on its output).
            Defaults to 'linear'.
        mixing_inner_dims (int, optional): adaptive-mixing generator width.
            Defaults to ``embed_dims // 4``.
        mixing_out_points (int, optional): adaptive-mixing output points.
            Defaults to ``num_points``.
        mixing_bias (bool): adaptive-mixing biases. Defaults to True.
        stage_embed (bool): add a learned embedding per repeat
            (``stage_embedding``, one row a repeat) before each repeat.
            Defaults to False.
    """

    def __init__(self,
                 embed_dims: int,
                 ops: Sequence[str] = CORTEX_OPS,
                 ndim: int = 2,
                 feat_channels: int = 96,
                 num_points: int = 36,
                 num_heads: int = 64,
                 mlp_ratio: int = 4,
                 mlp_act: str = 'gelu',
                 repeats: int = 1,
                 drop_path: Union[float, Sequence[float]] = 0.0,
                 eps: float = 1e-6,
                 clip_sampling_grad: bool = True,
                 padding_mode: str = 'zeros',
                 roi_adj_head: str = 'linear',
                 mixing_inner_dims: Optional[int] = None,
                 mixing_out_points: Optional[int] = None,
                 mixing_bias: bool = True,
                 stage_embed: bool = False):
        super().__init__()
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f'unknown ops {unknown}; choose from {list(OPS)}')
        if ndim not in (2, 3):
            raise ValueError(f'ndim must be 2 or 3, got {ndim}')
        self.embed_dims = embed_dims
        self.ops = tuple(ops)
        self.ndim = ndim
        self.feat_channels = feat_channels
        self.num_points = num_points
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.mlp_act = mlp_act
        self.repeats = repeats
        self.eps = eps
        self.clip_sampling_grad = clip_sampling_grad
        self.padding_mode = padding_mode
        self.roi_adj_head = roi_adj_head
        self.mixing_inner_dims = mixing_inner_dims
        self.mixing_out_points = mixing_out_points
        self.mixing_bias = mixing_bias
        if isinstance(drop_path, (int, float)):
            drop_path = [float(drop_path)] * repeats
        if len(drop_path) != repeats:
            raise ValueError(f'{len(drop_path)} drop-path rates for '
                             f'{repeats} repeats')
        self.drop_path_rates = [float(p) for p in drop_path]
        # Each kind of op once, in table order.
        for op in sorted(set(self.ops), key=list(OPS).index):
            OPS[op].build(self)
        self.stage_embedding = nn.Embedding(repeats, embed_dims) \
            if stage_embed else None

    @torch.no_grad()
    def reset_special(self) -> None:
        """Reference init of the heads that move RoIs and points (applied
        after the generic Linear/LayerNorm init)."""
        for op in dict.fromkeys(self.ops):
            if OPS[op].reset is not None:
                OPS[op].reset(self)

    def forward(self, state: TokenState) -> TokenState:
        """Apply the unit ``repeats`` times to ``state`` (updated in place
        and returned)."""
        for i, p in enumerate(self.drop_path_rates):
            if self.stage_embedding is not None:
                state.tokens = state.tokens + self.stage_embedding.weight[i]
            for op in self.ops:
                OPS[op].apply(self, state, p)
        return state
