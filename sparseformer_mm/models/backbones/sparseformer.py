"""SparseFormer backbone (Gao et al., ICLR 2024) for mmpretrain."""
import math
import warnings
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from ...archs import ARCH_ZOO, arch_name, parse_arch
from ..layers import (SparseFormerUnit, TokenState, grid_init_rois,
                      promote_half, tube_rois)


# torch.compile cannot put a warning in a graph (a graph break); this runs
# it once, when the call is traced (the conditions checked are static for a
# graph: shapes, autocast state).
@torch.compiler.assume_constant_result
def _warn(message: str) -> bool:
    warnings.warn(message, stacklevel=2)
    return True


def channel_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Parameter-free normalisation of each pixel across channels (half
    precision is computed in fp32).

    ``x`` is ``(B, C, *spatial)``; the result has the same shape. Computed as a
    LayerNorm over the channel axis moved last, which reads channels-last
    memory without a copy.
    """
    x = promote_half(x).movedim(1, -1)
    return F.layer_norm(x, x.shape[-1:], eps=eps).movedim(-1, 1)


class FrameConv2d(nn.Conv2d):
    """A Conv2d run on the frames of clips (as a batch of images) whose
    weight is stored in the layout of a Conv3d with a one-frame kernel,
    ``(out, in, 1, kh, kw)``, as video checkpoints hold it: that Conv3d
    (time stride 1, no time padding) computes exactly this 2-D conv of each
    frame.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight = nn.Parameter(self.weight.detach().unsqueeze(2))

    def forward(self, frames: Tensor) -> Tensor:
        """``(N, in, H, W)`` frames -> ``(N, out, H', W')``."""
        return self._conv_forward(frames, self.weight.squeeze(2), self.bias)


class EarlyConvolution(nn.Module):
    """The light conv stem: conv 7x7/2 -> ReLU -> max-pool 3/2 -> channel norm.

    For ``ndim=3`` the same stem runs on every frame (its conv a
    :class:`FrameConv2d`, stored as a ``(1, 7, 7)`` kernel); time is not
    downsampled.

    Args:
        out_channels (int): stem channels. Defaults to 96.
        ndim (int): 2 for images, 3 for video. Defaults to 2.
    """

    def __init__(self, out_channels: int = 96, ndim: int = 2):
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else FrameConv2d
        self.conv1 = conv(3, out_channels, 7, stride=2, padding=3)
        nn.init.kaiming_normal_(self.conv1.weight, mode='fan_out',
                                nonlinearity='relu')

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, [T,] H, W)`` -> ``(B, C, [T,] H/4, W/4)``, channels-last.

        The frames of a clip go through the stem as a batch of images, in
        channels-last memory, which the CPU and GPU conv and max-pool
        kernels and ``grid_sample`` all read fast. Max-pool runs before the
        ReLU: the two commute exactly and the ReLU then touches 4x fewer
        values, in place (allocating its output cost 10x the ReLU itself in
        a CPU profile).
        """
        video = x.dim() == 5
        if video:
            B, _, T = x.shape[:3]
            x = x.transpose(1, 2).flatten(0, 1)
        x = self.conv1(x.contiguous(memory_format=torch.channels_last))
        x = torch.relu_(F.max_pool2d(x, 3, stride=2, padding=1))
        if video:
            x = x.unflatten(0, (B, T)).transpose(1, 2)
        return channel_norm(x)


@MODELS.register_module()
class SparseFormer(BaseModule):
    """SparseFormer: recognition with a small set of latent tokens and RoIs.

    A conv stem extracts features once; latent tokens, each with a RoI, go
    through a stack of units. A unit applies its ops in order (``attn``,
    ``mlp``, ``roi_adj`` moves RoIs, ``sampling`` samples features at points
    inside them, ``pe_inject`` encodes them), ``repeats`` times with shared
    weights. The stack is data: an ``arch`` is a list of stages.

    Args:
        arch (str | dict): a name in ``arch_zoo`` (``'tiny'``, ``'small'``,
            ``'base'``; aliases ``'t'``, ``'s'``, ``'b'``), or a dict:

            - ``num_tokens``, ``num_points`` and ``stages``, a list of
              dicts with ``width`` and ``ops`` and any of the options in
              ``STAGE_DEFAULTS`` (``repeats``, ``depth``, ``num_heads`` or
              ``head_dims``, ``mlp_act``, ``roi_adj_head``, ``mixing_*``,
              ``stage_embed``, ``cls_token``, ``padding_mode``, ``eps``,
              ``transition_norm`` ...); optionally ``feat_channels`` and
              ``shared_embedding`` (all tokens start from one embedding).
              A width change between stages inserts a Linear (+ LayerNorm)
              transition.
            - the short form for the first paper's layout:
              ``num_tokens``, ``focus_dims``, ``cortex_dims``,
              ``cortex_depth``, ``num_points``.

            Defaults to 'tiny'.
        feat_channels (int, optional): stem channels; the arch's, else 96.
        num_heads (int): attention heads where a stage sets neither
            ``num_heads`` nor ``head_dims``. Defaults to 64.
        drop_path_rate (float): stochastic depth, ``linspace(0, rate, n)``
            over the n unit applications in order. Defaults to 0.
        clip_sampling_grad (bool): clip sampling-coordinate gradients to
            one feature cell during training (where a stage does not set
            it). Defaults to True.
        padding_mode (str): feature sampling padding (where a stage does
            not set it). Defaults to 'zeros'.
        init_cfg (dict, optional): mmengine init config (e.g. Pretrained).
        compile (bool | dict): run the forward through
            ``torch.compile(fullgraph=True)``: True, or a dict of
            ``torch.compile`` arguments (e.g. ``dict(mode='max-autotune')``;
            ``fullgraph`` may be overridden). The input checks and
            ``return_trace=True`` calls stay eager.
            The first call of each mode (training, inference; each new
            input shape) compiles, which takes minutes on a CPU. The weights
            and their names are those of the eager model. Defaults to False.
        with_cp (bool): activation checkpointing: while gradients are
            recorded, each unit application's activations are recomputed in
            backward instead of held (see :class:`SparseFormerUnit`), for
            less memory at the cost of a second forward of the units. The
            stem's are held. Defaults to False.

    The forward returns ``(tokens,)`` with tokens ``(B, [1 +] N, width)``
    (a class token first if the arch inserts one); with
    ``return_trace=True`` it returns a dict with the final ``tokens`` and
    ``rois`` and, per sampling pass, its ``rois`` and sampling ``points``.
    """
    ndim = 2
    arch_zoo = ARCH_ZOO
    input_layout = '(B, 3, H, W)'
    _layout_hint = ''

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 feat_channels: Optional[int] = None,
                 num_heads: int = 64,
                 drop_path_rate: float = 0.0,
                 clip_sampling_grad: bool = True,
                 padding_mode: str = 'zeros',
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None,
                 replicates: int = 1,
                 compile: Union[bool, dict] = False,
                 with_cp: bool = False):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        if isinstance(compile, bool):
            compile = dict() if compile else None
        elif not isinstance(compile, dict):
            raise ValueError(
                'model.backbone.compile must be True, False or a dict of '
                f'torch.compile arguments, got {compile!r}')
        self.compile_cfg = None if compile is None else \
            dict(dict(fullgraph=True), **compile)
        if self.ndim == 2 and replicates != 1:
            raise ValueError('replicates is a VideoSparseFormer option; an '
                             'image SparseFormer has one token per RoI.')
        self.arch_settings = self.parse_arch(arch)
        s = self.arch_settings
        self.num_tokens = s['num_tokens']
        self.replicates = replicates
        self.num_total_tokens = self.num_tokens * replicates
        self.embed_dims = s['stages'][-1]['width']
        # A tensor, not a number, so that a compiled forward reads its value
        # rather than recompiling when it changes; not saved in checkpoints.
        self.register_buffer('_loss_scale', torch.ones(()), persistent=False)
        self._loss_scale_managed = False
        feat_channels = feat_channels or s['feat_channels'] or 96

        self.feat_extractor = EarlyConvolution(feat_channels, self.ndim)
        self.initial_roi = nn.Embedding(self.num_total_tokens, 2 * self.ndim)
        self.initial_embedding = nn.Embedding(
            1 if s['shared_embedding'] else self.num_total_tokens,
            s['stages'][0]['width'])
        self.cls_embedding = None
        self.cls_token_layer = None  # index into self.layers

        units = [(st, j) for st in s['stages'] for j in range(st['depth'])]
        plain = [u['width'] for u, _ in units if 'attn' in u['ops']
                 and u['num_heads'] is None and u['head_dims'] is None]
        heads_hint = math.gcd(num_heads, *plain)
        dpr = torch.linspace(0, drop_path_rate,
                             sum(u['repeats'] for u, _ in units)).tolist()
        self.layers = nn.ModuleList()
        width = units[0][0]['width']
        for u, j in units:
            if u['width'] != width:
                transition = [nn.Linear(width, u['width'])]
                if u['transition_norm']:
                    transition.append(nn.LayerNorm(u['width'], eps=u['eps']))
                self.layers.append(nn.Sequential(*transition))
                width = u['width']
            if u['cls_token'] and j == 0:
                self.cls_token_layer = len(self.layers)
                self.cls_embedding = nn.Embedding(1, width)
            self.layers.append(SparseFormerUnit(
                dict(u, num_heads=self._heads(u, num_heads, heads_hint),
                     clip_sampling_grad=_given(u['clip_sampling_grad'],
                                               clip_sampling_grad),
                     padding_mode=_given(u['padding_mode'], padding_mode)),
                ndim=self.ndim, feat_channels=feat_channels,
                num_points=s['num_points'], drop_path=dpr[:u['repeats']]))
            dpr = dpr[u['repeats']:]
        self.reset_parameters()

    @staticmethod
    def _heads(unit: dict, default: int, hint: int) -> int:
        width = unit['width']
        if 'attn' not in unit['ops']:
            return default  # unused
        if unit['num_heads'] is not None:
            heads, key = unit['num_heads'], 'num_heads'
        elif unit['head_dims'] is not None:
            if width % unit['head_dims']:
                raise ValueError(f"head_dims={unit['head_dims']} does not "
                                 f'divide the stage width {width}.')
            return width // unit['head_dims']
        else:
            heads, key = default, 'model.backbone.num_heads'
            hint = f'a divisor of every stage width (e.g. {hint})'
        if width % heads:
            if key == 'num_heads':
                hint = f'a divisor of {width}'
            raise ValueError(
                f'num_heads={heads} does not divide the stage width={width}; '
                f'set {key} to {hint}, or head_dims in the stages.')
        return heads

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """A name in ``arch_zoo`` or an arch dict -> the full form
        (:func:`sparseformer_mm.archs.parse_arch`)."""
        return parse_arch(arch, cls.arch_zoo)

    @classmethod
    def arch_name(cls, arch: dict) -> str:
        """``'tiny'`` etc. for a zoo arch, else the dict as text."""
        return arch_name(arch, cls.arch_zoo)

    def initial_rois(self) -> Tensor:
        """RoI initialisation: the reference's half-image grid (for video,
        each box inflated into ``replicates`` tubes)."""
        boxes = grid_init_rois(
            self.num_tokens,
            rest_full=self.arch_settings['roi_init'] == 'grid_rest_full',
            grid=self.arch_settings['token_grid'])
        return boxes if self.ndim == 2 else tube_rois(boxes, self.replicates)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference initialisation scheme."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, SparseFormerUnit):
                m.reset_special()
        nn.init.trunc_normal_(self.initial_embedding.weight, std=1.0)
        self.initial_roi.weight.copy_(self.initial_rois())

    def no_weight_decay(self):
        """Parameter names that must not be decayed (timm convention)."""
        return {'initial_roi.weight'}

    @property
    def loss_scale(self) -> float:
        """The AMP loss scale the sampling-coordinate gradient clip assumes
        (1 unless :meth:`set_loss_scale` said otherwise)."""
        return float(self._loss_scale)

    def set_loss_scale(self, scale: float) -> None:
        """The AMP loss scale the next backward multiplies the loss by, so
        that the sampling-coordinate gradient clip scales with it (set by
        ``AmpOrFp32OptimWrapper`` before each training step)."""
        with torch.no_grad():
            self._loss_scale.fill_(float(scale))
        self._loss_scale_managed = True

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != self.ndim + 2 or x.shape[1] != 3:
            raise ValueError(
                f'{type(self).__name__} takes {self.input_layout} RGB input, '
                f'got shape {tuple(x.shape)}.{self._layout_hint}')

    def _check_loss_scale(self, x: Tensor) -> None:
        dev = x.device.type
        if (self.training and not self._loss_scale_managed
                and torch.is_autocast_enabled(dev)
                and torch.get_autocast_dtype(dev) == torch.float16):
            _warn('SparseFormer is training under fp16 autocast but no '
                  'optimizer wrapper sets its loss scale, so the sampling '
                  'coordinate gradient clip ignores the loss scale. Set '
                  "optim_wrapper.type='AmpOrFp32OptimWrapper'.")
            # warn once (a compiled graph warned when traced: a changed
            # flag would only make the next call recompile it)
            if not torch.compiler.is_compiling():
                self._loss_scale_managed = True

    def forward(self, inputs: Tensor, return_trace: bool = False):
        """Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            return_trace (bool): return the dict described in the class doc.
        """
        self._check_input(inputs)
        self._check_loss_scale(inputs)
        if self.compile_cfg is None or return_trace:
            # the trace is for inspection (RoIVisualizationHook): not worth
            # compiling a graph of its own
            return self._run(inputs, return_trace)
        return _compiled(type(self)._run, self.compile_cfg)(
            self, inputs, return_trace)

    def _run(self, inputs: Tensor, return_trace: bool):
        """The forward after the input checks (what ``compile`` compiles)."""
        feat = self.feat_extractor(inputs)
        B = inputs.shape[0]
        tokens = promote_half(self.initial_embedding.weight).unsqueeze(
            0).expand(B, self.num_total_tokens, -1)
        rois = promote_half(self.initial_roi.weight).unsqueeze(0).expand(
            B, -1, -1)
        # A copy: the clip reads it in backward, and a new scale set before
        # then must not fail autograd's in-place check.
        state = TokenState(feat, tokens, rois, self._loss_scale.clone(),
                           [] if return_trace else None)
        for i, layer in enumerate(self.layers):
            if i == self.cls_token_layer:
                cls = promote_half(self.cls_embedding.weight).to(
                    state.tokens.dtype).unsqueeze(0).expand(B, -1, -1)
                state.tokens = torch.cat([cls, state.tokens], dim=1)
                state.num_prefix = 1
                if self.replicates > 1:
                    # The class token's key counts once per replica, so
                    # attention over R identical copies of each token
                    # equals attention over one (an inflated image model
                    # on a static clip gives the image model's output).
                    bias = state.tokens.new_zeros(state.tokens.shape[1])
                    bias[0] = math.log(self.replicates)
                    state.key_bias = bias
            if isinstance(layer, SparseFormerUnit):
                # checkpointing needs a graph; a trace is made in the forward
                state = layer(state, with_cp=self.with_cp and not return_trace
                              and torch.is_grad_enabled())
            else:
                state.tokens = layer(state.tokens)
        if return_trace:
            return dict(tokens=state.tokens, rois=state.rois,
                        passes=state.trace)
        return (state.tokens, )


def _given(value, default):
    return default if value is None else value


_COMPILED: Dict[str, Callable] = {}


def _compiled(run: Callable, options: dict) -> Callable:
    """``torch.compile(run, **options)``, made once per function and options.

    ``run`` is unbound (it takes the module first), so a deep copy of a
    backbone (e.g. an EMA model) runs its own weights through it, and no
    compiled function is stored on the module (pickling, ``state_dict``).
    """
    key = f'{run.__module__}.{run.__qualname__}:{options!r}'
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(run, **options)
    return _COMPILED[key]
