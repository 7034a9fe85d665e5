"""The SparseFormer unit: a list of ops applied to latent tokens and their RoIs.

Ops live in a table, ``OPS``: name -> ``Op(key, build, apply, reset,
inflate)``. ``build`` creates the op's modules on the unit (under the
released weights' names), ``apply`` updates the running
:class:`TokenState`, and ``reset`` gives the op's modules their reference
initialisation after the generic one. For checkpoints, ``key`` is the
parameter whose presence in a unit's weights shows the op (how an arch is
read off a file) and ``inflate`` turns the op's image weights into video
ones. A new kind of op is one entry, for the forward and for checkpoints.

One implementation serves images (``ndim=2``: boxes, bilinear sampling) and
video (``ndim=3``: tubes, trilinear sampling).
"""
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor

from .adaptive_mixing import AdaptiveMixing
from .roi_geometry import (grid_init_offsets, make_sampling_points,
                           roi_adjust, roi_sincos, tube_time_sincos,
                           xy_to_xyt)
from .sampling import sample_points

StateDict = Dict[str, Tensor]

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
    """One kind of op.

    Attributes:
        key (str): a parameter (unit-level name) only this op creates: its
            presence in a checkpoint's unit shows the op.
        build: ``build(unit)`` creates the op's modules.
        apply: ``apply(unit, state, drop_rate)`` runs it.
        reset: ``reset(unit)``, optional: reference init of its modules.
        inflate: ``inflate(weights)``, optional: the op's image weights
            among a unit's (unit-level names) as video weights, returned
            as a new dict with the other entries unchanged.
    """
    key: str
    build: Callable[['SparseFormerUnit'], None]
    apply: Callable[['SparseFormerUnit', TokenState, float], None]
    reset: Optional[Callable[['SparseFormerUnit'], None]] = None
    inflate: Optional[Callable[[StateDict], StateDict]] = None


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


def _inflate_roi_adj(sd):
    # output rows (x, y, w, h) -> (x, y, 0, w, h, 0): tubes keep their time
    out = dict(sd)
    for key, value in sd.items():
        if re.fullmatch(r'roi_adjust_module\.\d+\.weight', key) \
                and value.dim() == 2 and value.shape[0] == 4:
            out[key] = xy_to_xyt(value, 2)
    return out


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


def _inflate_sampling(sd):
    # every point offset (x, y) -> (x, y, 0)
    out = dict(sd)
    for key in ('roi_offset_module.1.weight', 'roi_offset_bias'):
        out[key] = xy_to_xyt(sd[key], sd[key].shape[0] // 2)
    return out


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


def _inflate_pe_inject(sd):
    # the tubes' temporal encoding starts at zero (as _reset_pe_inject)
    d = sd['pe_transition.1.weight'].shape[0]
    like = sd['pe_transition.1.weight']
    return dict(sd, **{'pe_time.0.weight': like.new_ones(d),
                       'pe_time.0.bias': like.new_zeros(d),
                       'pe_time.1.weight': like.new_zeros(d, d),
                       'pe_time.1.bias': like.new_zeros(d)})


# Table order is build order: modules draw their default init from the
# global RNG when built, so a fixed seed gives the same weights as before.
OPS: Dict[str, Op] = {
    'attn': Op('norm1.weight', _build_attn, _apply_attn),
    'roi_adj': Op('roi_adjust_module.0.weight', _build_roi_adj,
                  _apply_roi_adj, _reset_roi_adj, _inflate_roi_adj),
    'sampling': Op('roi_offset_bias', _build_sampling, _apply_sampling,
                   _reset_sampling, _inflate_sampling),
    'mlp': Op('norm2.weight', _build_mlp, _apply_mlp),
    'pe_inject': Op('pe_transition.0.weight', _build_pe_inject,
                    _apply_pe_inject, _reset_pe_inject, _inflate_pe_inject),
}


def unit_ops(keys) -> tuple:
    """The ops of a unit whose weights have (unit-level) names ``keys``,
    in table order; ``()`` for weights that are no unit's."""
    return tuple(op for op, spec in OPS.items() if spec.key in keys)


def inflate_unit(sd: StateDict) -> StateDict:
    """A unit's image weights (unit-level names) as video weights: each op
    present inflates its own (:attr:`Op.inflate`); the rest is kept."""
    for op in unit_ops(sd):
        if OPS[op].inflate is not None:
            sd = OPS[op].inflate(sd)
    return sd


class SparseFormerUnit(nn.Module):
    """A unit of ops, optionally applied ``repeats`` times with shared weights.

    Args:
        stage (dict): the stage the unit belongs to, in the full form
            (``archs.parse_arch``; every option of ``archs.STAGE_DEFAULTS``
            set) with ``num_heads``, ``padding_mode`` and
            ``clip_sampling_grad`` resolved to values. The unit reads
            ``width`` (its token width), ``ops`` (keys of ``OPS``, in
            order), ``repeats``, ``num_heads``, ``mlp_ratio``, ``mlp_act``
            (``'gelu'`` or ``'quick_gelu'``), ``eps`` (LayerNorm),
            ``clip_sampling_grad`` (clip the gradient reaching sampling
            coordinates to one feature cell, scaled by the AMP loss scale),
            ``padding_mode`` (feature sampling), ``roi_adj_head``
            (``'linear'``: LN -> Linear; ``'mlp'``: LN -> Linear -> GELU ->
            Linear, no drop-path on its output), ``mixing_inner_dims``
            (``None``: width // 4), ``mixing_out_points`` (``None``:
            ``num_points``), ``mixing_bias`` and ``stage_embed`` (a learned
            embedding per repeat, ``stage_embedding``, added before each).
        ndim (int): spatial dimensions of RoIs: 2 (boxes) or 3 (tubes).
            Defaults to 2.
        feat_channels (int): channels of the sampled feature map.
            Defaults to 96.
        num_points (int): sampling points per token. Defaults to 36.
        drop_path (float | Sequence[float]): stochastic depth rate, one per
            repeat. Defaults to 0.
    """

    def __init__(self,
                 stage: dict,
                 ndim: int = 2,
                 feat_channels: int = 96,
                 num_points: int = 36,
                 drop_path: Union[float, Sequence[float]] = 0.0):
        super().__init__()
        ops = stage['ops']
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f'unknown ops {unknown}; choose from {list(OPS)}')
        if ndim not in (2, 3):
            raise ValueError(f'ndim must be 2 or 3, got {ndim}')
        self.embed_dims = stage['width']
        self.ops = tuple(ops)
        self.ndim = ndim
        self.feat_channels = feat_channels
        self.num_points = num_points
        for key in ('num_heads', 'mlp_ratio', 'mlp_act', 'repeats', 'eps',
                    'clip_sampling_grad', 'padding_mode', 'roi_adj_head',
                    'mixing_inner_dims', 'mixing_out_points', 'mixing_bias'):
            setattr(self, key, stage[key])
        repeats = self.repeats
        if isinstance(drop_path, (int, float)):
            drop_path = [float(drop_path)] * repeats
        if len(drop_path) != repeats:
            raise ValueError(f'{len(drop_path)} drop-path rates for '
                             f'{repeats} repeats')
        self.drop_path_rates = [float(p) for p in drop_path]
        # Each kind of op once, in table order.
        for op in sorted(set(self.ops), key=list(OPS).index):
            OPS[op].build(self)
        self.stage_embedding = nn.Embedding(repeats, self.embed_dims) \
            if stage['stage_embed'] else None

    @torch.no_grad()
    def reset_special(self) -> None:
        """Reference init of the heads that move RoIs and points (applied
        after the generic Linear/LayerNorm init)."""
        for op in dict.fromkeys(self.ops):
            if OPS[op].reset is not None:
                OPS[op].reset(self)

    def forward(self, state: TokenState, with_cp: bool = False) -> TokenState:
        """Apply the unit ``repeats`` times to ``state`` (updated in place
        and returned).

        With ``with_cp`` each application is checkpointed
        (``torch.utils.checkpoint``, non-reentrant): its activations are
        recomputed in backward (drop-path masks included: the RNG state is
        restored) rather than held, so at most one application's are
        alive at a time.
        """
        for i in range(self.repeats):
            if with_cp:
                state.tokens, state.rois = cp.checkpoint(
                    _application, self, i, state.feat, state.tokens,
                    state.rois, state.loss_scale, state.num_prefix,
                    state.key_bias, use_reentrant=False)
            else:
                self.apply_once(state, i)
        return state

    def apply_once(self, state: TokenState, i: int) -> None:
        """The ``i``-th application of the unit's ops to ``state``."""
        p = self.drop_path_rates[i]
        if self.stage_embedding is not None:
            state.tokens = state.tokens + self.stage_embedding.weight[i]
        for op in self.ops:
            OPS[op].apply(self, state, p)


def _application(unit: SparseFormerUnit, i: int, feat: Tensor, tokens: Tensor,
                 rois: Tensor, loss_scale: Union[float, Tensor],
                 num_prefix: int, key_bias: Optional[Tensor]):
    """The tokens and RoIs of ``unit``'s ``i``-th application to a fresh
    state: a function of its inputs, as a checkpoint's recompute needs (the
    ops update a state in place)."""
    state = TokenState(feat, tokens, rois, loss_scale)
    state.num_prefix, state.key_bias = num_prefix, key_bias
    unit.apply_once(state, i)
    return state.tokens, state.rois
