"""Sparse feature sampling at points, in 2-D (bilinear) or 3-D (trilinear)."""

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .roi_geometry import promote_half


class ClipCoordGrad(torch.autograd.Function):
    """Identity forward; clamps the incoming gradient element-wise to
    ``±limit * loss_scale`` in backward.

    The original training code keeps the gradient reaching the sampling
    coordinates local (at most one feature-map cell, ``1/H_feat``). Under fp16
    loss scaling every gradient is multiplied by the loss scale ``g``, so the
    limit must be multiplied by ``g`` too, or the clip would cut the scaled
    gradients to almost nothing. bf16 and fp32 training use ``g = 1``.

    ``loss_scale`` is a number or a 0-dim tensor. The backbones pass their
    tensor: a graph compiled by ``torch.compile`` then reads the scale's
    current value at each backward, where a number would be baked into the
    graph (and each new value would recompile it).
    """

    @staticmethod
    def forward(ctx, x: Tensor, limit: float,
                loss_scale: Union[float, Tensor]):
        ctx.limit, ctx.bound = limit, None
        if isinstance(loss_scale, Tensor):
            ctx.save_for_backward(loss_scale)
        else:
            ctx.bound = limit * loss_scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.bound is not None:
            return grad.clamp(-ctx.bound, ctx.bound), None, None
        # In the gradient's dtype, as a number bound would be: for the
        # power-of-two scales of loss scalers the bound is exactly the same.
        bound = ctx.saved_tensors[0].to(grad.dtype) * ctx.limit
        return grad.clamp(-bound, bound), None, None


def sample_points(feat: Tensor,
                  points: Tensor,
                  clip_grad: bool = False,
                  loss_scale: Union[float, Tensor] = 1.0,
                  padding_mode: str = 'zeros',
                  align_corners: bool = False) -> Tensor:
    """Sample ``feat`` at normalised points with (bi/tri)linear interpolation.

    Args:
        feat (Tensor): ``(B, C, H, W)`` or ``(B, C, T, H, W)``. Half
            precision is promoted to fp32.
        points (Tensor): ``(B, N, P, ndim)`` in [0, 1], ``(x, y)`` or
            ``(x, y, t)`` order.
        clip_grad (bool): clip the coordinate gradient to ``±loss_scale/H``.
        loss_scale (float | Tensor): the AMP loss scale currently in
            effect (a number or a 0-dim tensor).
        padding_mode (str): ``grid_sample`` padding. Defaults to 'zeros'.
        align_corners (bool): ``grid_sample`` convention. Defaults to False.

    Returns:
        Tensor: ``(B, N, P, C)`` in fp32 (or the points' wider dtype).
    """
    feat, points = promote_half(feat), promote_half(points)
    if feat.dtype != points.dtype:
        feat = feat.to(points.dtype)
    ndim = points.shape[-1]
    if feat.dim() != ndim + 2:
        raise ValueError(f'{ndim}-D points need a {ndim + 2}-D feature map, '
                         f'got shape {tuple(feat.shape)}')
    if clip_grad and points.requires_grad:
        points = ClipCoordGrad.apply(points, 1.0 / feat.shape[-2], loss_scale)
    grid = points * 2.0 - 1.0
    B, N = points.shape[:2]
    k = _cpu_chunks(feat, grid)
    if k > 1:  # one image / clip: its tokens in k chunks, one a thread
        feat = feat.expand(k, *feat.shape[1:])  # a view: no copy
        grid = grid.reshape(k, N // k, *grid.shape[2:])
    if ndim == 3:
        grid = grid.unsqueeze(1)  # (B, 1, N, P, 3)
    out = F.grid_sample(feat, grid, mode='bilinear', padding_mode=padding_mode,
                        align_corners=align_corners)
    if ndim == 3:
        out = out.squeeze(2)
    out = out.permute(0, 2, 3, 1)  # (B, N, P, C)
    return out.reshape(B, N, *out.shape[2:]) if k > 1 else out


# torch.get_num_threads() returns no tensor, so torch.compile cannot trace
# it (a graph break); this reads it once when a graph is traced instead. A
# later torch.set_num_threads() then keeps the traced split, which computes
# the same values (below) and at worst uses the threads less well.
@torch.compiler.assume_constant_result
def _num_threads() -> int:
    return torch.get_num_threads()


def _cpu_chunks(feat: Tensor, grid: Tensor) -> int:
    """How many chunks to split one sample's tokens into for ``grid_sample``.

    Its CPU kernels run the batch in parallel and each sample on one
    thread, so a single image or clip (inference at batch 1: latency, the
    video benchmark) would use one core. Sampling a chunk of tokens against
    the same (expanded, not copied) feature map per batch entry computes
    exactly the same values on all threads. Only without autograd: the
    backward would materialise one feature-map gradient per chunk.
    """
    threads = _num_threads()
    if (feat.device.type != 'cpu' or feat.shape[0] != 1 or threads < 2
            or (torch.is_grad_enabled()
                and (feat.requires_grad or grid.requires_grad))):
        return 1
    N = grid.shape[1]
    return max(k for k in range(1, threads + 1) if N % k == 0)
