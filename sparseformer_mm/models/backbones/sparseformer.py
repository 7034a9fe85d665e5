"""SparseFormer backbone (Gao et al., ICLR 2024) for mmpretrain."""
import math
import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor

from ..layers import (CORTEX_OPS, FOCUS_OPS, SparseFormerUnit, grid_init_rois,
                      promote_half)


def channel_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Parameter-free normalisation of each pixel across channels (half
    precision is computed in fp32).

    ``x`` is ``(B, C, *spatial)``; the result has the same shape. Computed as a
    LayerNorm over the channel axis moved last, which reads channels-last
    memory without a copy.
    """
    x = promote_half(x).movedim(1, -1)
    return F.layer_norm(x, x.shape[-1:], eps=eps).movedim(-1, 1)


class EarlyConvolution(nn.Module):
    """The light conv stem: conv 7x7/2 -> ReLU -> max-pool 3/2 -> channel norm.

    For ``ndim=3`` the same stem runs per frame (kernel (1,7,7), stride
    (1,2,2)); time is not downsampled.

    Args:
        out_channels (int): stem channels. Defaults to 96.
        ndim (int): 2 for images, 3 for video. Defaults to 2.
    """

    def __init__(self, out_channels: int = 96, ndim: int = 2):
        super().__init__()
        # The 3-D kernel keeps the released video layout (C, 3, 1, 7, 7).
        if ndim == 2:
            self.conv1 = nn.Conv2d(3, out_channels, 7, stride=2, padding=3)
        else:
            self.conv1 = nn.Conv3d(3, out_channels, (1, 7, 7), stride=(1, 2, 2),
                                   padding=(0, 3, 3))
        nn.init.kaiming_normal_(self.conv1.weight, mode='fan_out',
                                nonlinearity='relu')

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, [T,] H, W)`` -> ``(B, C, [T,] H/4, W/4)``, channels-last.

        Frames go through the 2-D kernels as a batch (the 3-D kernel is
        ``(1, 7, 7)``, so this is the same computation), in channels-last
        memory, which the CPU and GPU conv and max-pool kernels and
        ``grid_sample`` all read fast. Max-pool runs before the ReLU: the two
        commute exactly and the ReLU then touches 4x fewer values, in place
        (allocating its output cost 10x the ReLU itself in a CPU profile).
        """
        video = x.dim() == 5
        if video:
            B, _, T = x.shape[:3]
            x = x.transpose(1, 2).flatten(0, 1)
            weight = self.conv1.weight.squeeze(2)
        else:
            weight = self.conv1.weight
        x = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight,
                     self.conv1.bias, stride=2, padding=3)
        x = torch.relu_(F.max_pool2d(x, 3, stride=2, padding=1))
        if video:
            x = x.unflatten(0, (B, T)).transpose(1, 2)
        return channel_norm(x)


@MODELS.register_module()
class SparseFormer(BaseModule):
    """SparseFormer: recognition with a small set of latent tokens and RoIs.

    A conv stem extracts features once; a focusing unit (applied
    ``focus_repeats`` times with shared weights) moves each token's RoI and
    samples features inside it; a cortex of transformer blocks (block 0 also
    samples) works on the tokens alone.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (aliases
            ``'t'``, ``'s'``, ``'b'``) or a dict with the keys
            ``num_tokens``, ``focus_dims``, ``cortex_dims``, ``cortex_depth``
            and ``num_points``. Defaults to 'tiny'.
        feat_channels (int): stem channels. Defaults to 96.
        focus_repeats (int): shared-weight repeats of the focusing unit.
            Defaults to 4.
        num_heads (int): attention heads at every width. Defaults to 64.
        drop_path_rate (float): stochastic depth, ``linspace(0, rate,
            focus_repeats + cortex_depth)``. Defaults to 0.
        clip_sampling_grad (bool): clip sampling-coordinate gradients to
            one feature cell during training. Defaults to True.
        padding_mode (str): feature sampling padding. Defaults to 'zeros'.
        init_cfg (dict, optional): mmengine init config (e.g. Pretrained).

    The forward returns ``(tokens,)`` with tokens ``(B, N, cortex_dims)``;
    with ``return_trace=True`` it returns a dict with the final ``tokens`` and
    ``rois`` and, per sampling pass, its ``rois`` and sampling ``points``.
    """
    ndim = 2
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], dict(
            num_tokens=49, focus_dims=256, cortex_dims=512, cortex_depth=8,
            num_points=36)),
        **dict.fromkeys(['s', 'small'], dict(
            num_tokens=64, focus_dims=320, cortex_dims=640, cortex_depth=8,
            num_points=36)),
        **dict.fromkeys(['b', 'base'], dict(
            num_tokens=81, focus_dims=384, cortex_dims=768, cortex_depth=10,
            num_points=36)),
    }
    essential_keys = {'num_tokens', 'focus_dims', 'cortex_dims', 'cortex_depth',
                      'num_points'}

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 feat_channels: int = 96,
                 focus_repeats: int = 4,
                 num_heads: int = 64,
                 drop_path_rate: float = 0.0,
                 clip_sampling_grad: bool = True,
                 padding_mode: str = 'zeros',
                 init_cfg: Optional[Union[dict, Sequence[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        s = self.arch_settings
        for key in ('focus_dims', 'cortex_dims'):
            if s[key] % num_heads:
                raise ValueError(
                    f'num_heads={num_heads} does not divide {key}='
                    f'{s[key]}; set model.backbone.num_heads to a common '
                    f"divisor of focus_dims={s['focus_dims']} and "
                    f"cortex_dims={s['cortex_dims']} (e.g. "
                    f"{math.gcd(s['focus_dims'], s['cortex_dims'])}).")
        self.num_tokens = s['num_tokens']
        self.embed_dims = s['cortex_dims']
        # Written by SamplingGradScaleHook before each training iteration.
        self.loss_scale = 1.0
        self._loss_scale_managed = False

        self.feat_extractor = EarlyConvolution(feat_channels, self.ndim)
        self.initial_roi = nn.Embedding(self.num_total_tokens, 2 * self.ndim)
        self.initial_embedding = nn.Embedding(self.num_total_tokens,
                                              s['focus_dims'])

        dpr = torch.linspace(0, drop_path_rate,
                             focus_repeats + s['cortex_depth']).tolist()
        common = dict(ndim=self.ndim, feat_channels=feat_channels,
                      num_points=s['num_points'], num_heads=num_heads,
                      clip_sampling_grad=clip_sampling_grad,
                      padding_mode=padding_mode)
        self.layers = nn.ModuleList([
            SparseFormerUnit(s['focus_dims'], FOCUS_OPS, repeats=focus_repeats,
                             drop_path=dpr[:focus_repeats], **common)
        ])
        if s['focus_dims'] != s['cortex_dims']:
            self.layers.append(nn.Sequential(
                nn.Linear(s['focus_dims'], s['cortex_dims']),
                nn.LayerNorm(s['cortex_dims'], eps=1e-6)))
        for i in range(s['cortex_depth']):
            self.layers.append(SparseFormerUnit(
                s['cortex_dims'], FOCUS_OPS if i == 0 else CORTEX_OPS,
                drop_path=dpr[focus_repeats + i], **common))
        self.reset_parameters()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f"arch '{arch}' is not one of "
                                 f'{sorted(set(cls.arch_zoo))}; or pass a dict '
                                 f'with keys {sorted(cls.essential_keys)}')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict) or set(arch) != cls.essential_keys:
            got = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
            raise ValueError(f'a custom arch must be a dict with exactly the '
                             f'keys {sorted(cls.essential_keys)}, got {got}')
        return dict(arch)

    @property
    def num_total_tokens(self) -> int:
        """Number of latent tokens the model carries."""
        return self.num_tokens

    def initial_rois(self) -> Tensor:
        """RoI initialisation: the reference's half-image grid."""
        return grid_init_rois(self.num_tokens)

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

    input_layout = '(B, 3, H, W)'

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != self.ndim + 2 or x.shape[1] != 3:
            raise ValueError(
                f'{type(self).__name__} takes {self.input_layout} RGB input, '
                f'got shape {tuple(x.shape)}.{self._layout_hint}')

    _layout_hint = ''

    def _check_loss_scale(self, x: Tensor) -> None:
        dev = x.device.type
        if (self.training and not self._loss_scale_managed
                and torch.is_autocast_enabled(dev)
                and torch.get_autocast_dtype(dev) == torch.float16):
            warnings.warn(
                'SparseFormer is training under fp16 autocast but no '
                'SamplingGradScaleHook sets its loss scale, so the sampling '
                'coordinate gradient clip ignores the loss scale. Add '
                "dict(type='SamplingGradScaleHook') to custom_hooks.")
            self._loss_scale_managed = True  # warn once

    def forward(self, inputs: Tensor, return_trace: bool = False):
        """Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.
            return_trace (bool): return the dict described in the class doc.
        """
        self._check_input(inputs)
        self._check_loss_scale(inputs)
        feat = self.feat_extractor(inputs)
        B = inputs.shape[0]
        tokens = promote_half(self.initial_embedding.weight).unsqueeze(
            0).expand(B, -1, -1)
        rois = promote_half(self.initial_roi.weight).unsqueeze(0).expand(
            B, -1, -1)
        trace = [] if return_trace else None
        for layer in self.layers:
            if isinstance(layer, SparseFormerUnit):
                tokens, rois = layer(feat, tokens, rois, self.loss_scale, trace)
            else:
                tokens = layer(tokens)
        if return_trace:
            return dict(tokens=tokens, rois=rois, passes=trace)
        return (tokens, )
