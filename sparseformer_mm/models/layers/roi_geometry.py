"""RoI geometry shared by the image (2-D boxes) and video (3-D tubes) models.

A RoI with ``ndim`` spatial dimensions is stored as its two corners
``(lo_1, ..., lo_ndim, hi_1, ..., hi_ndim)`` in normalised [0, 1] coordinates:
``(x1, y1, x2, y2)`` for images and ``(x1, y1, t1, x2, y2, t2)`` for video.
"""
import math

import torch
from torch import Tensor

# Bounds on a RoI's side (width, height, temporal length) in normalised
# units, applied after each adjustment. Below 1e-3 (a tenth of a feature
# cell at 448 px, stride 4) all points of a RoI sample the same bilinear
# neighbourhood; above 4 (four images / clips) nearly every point samples
# the zero padding. Trained models stay far inside (the demo models: 0.18 to
# 0.77), so the clamp changes no normal output; it keeps a diverging
# ``exp(delta)`` from turning sizes into 0 or inf (and points into NaN).
# Inside the range the gradient is the unclamped one.
MIN_ROI_SIZE = 1e-3
MAX_ROI_SIZE = 4.0


def promote_half(x: Tensor) -> Tensor:
    """fp16/bf16 -> fp32; other dtypes (fp32, fp64) unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def roi_center_size(roi: Tensor):
    """Split corner-form RoIs ``(..., 2*ndim)`` into centres and sizes."""
    ndim = roi.shape[-1] // 2
    lo, hi = roi[..., :ndim], roi[..., ndim:]
    return (lo + hi) * 0.5, hi - lo


@torch.autocast('cuda', enabled=False)
@torch.autocast('cpu', enabled=False)
def roi_adjust(roi: Tensor, delta: Tensor) -> Tensor:
    """Move and rescale RoIs by predicted deltas (always in fp32).

    Args:
        roi (Tensor): ``(..., 2*ndim)`` corners.
        delta (Tensor): ``(..., 2*ndim)``: the first ``ndim`` values shift the
            centre by ``delta * size``; the last ``ndim`` scale the size by
            ``exp(delta)``. The new sizes are clamped to
            ``[MIN_ROI_SIZE, MAX_ROI_SIZE]``.

    Returns:
        Tensor: adjusted corners, same shape as ``roi``.
    """
    roi, delta = promote_half(roi), promote_half(delta)
    ndim = roi.shape[-1] // 2
    center, _ = roi_center_size(roi)
    size = (roi[..., ndim:] - roi[..., :ndim]).abs()
    center = center + delta[..., :ndim] * size
    size = (size * delta[..., ndim:].exp()).clamp(MIN_ROI_SIZE, MAX_ROI_SIZE)
    return torch.cat([center - 0.5 * size, center + 0.5 * size], dim=-1)


@torch.autocast('cuda', enabled=False)
@torch.autocast('cpu', enabled=False)
def make_sampling_points(roi: Tensor, offset: Tensor, eps: float = 1e-5) -> Tensor:
    """Turn raw per-token offsets into absolute sampling points inside RoIs.

    Offsets are standardised per token and per axis over the points
    (``(o - mean) / (3 * (std + eps))``, unbiased std), scaled by the RoI size
    and added to the RoI centre.

    Args:
        roi (Tensor): ``(B, N, 2*ndim)`` corners.
        offset (Tensor): ``(B, N, P*ndim)``, point-major (x varying fastest
            within a point).
        eps (float): added to the std. Defaults to 1e-5.

    Returns:
        Tensor: ``(B, N, P, ndim)`` absolute normalised coordinates.
    """
    roi, offset = promote_half(roi), promote_half(offset)
    B, N, _ = offset.shape
    ndim = roi.shape[-1] // 2
    offset = offset.view(B, N, -1, ndim)
    mean = offset.mean(dim=2, keepdim=True)
    std = offset.std(dim=2, keepdim=True) + eps
    offset = (offset - mean) / (3 * std)
    center, size = roi_center_size(roi)
    return center.unsqueeze(2) + offset * size.unsqueeze(2)


def grid_init_rois(num_tokens: int, unit: float = 0.5,
                   rest_full: bool = False, grid=None) -> Tensor:
    """The reference RoI initialisation: an ``r x r`` grid of half-image boxes.

    Token ``a*r + b`` has x-index ``a`` and y-index ``b``; along each axis the
    low corner is ``i/(r-1) * (1 - unit)`` and the high corner ``lo + unit``.
    With ``grid=(cols, rows)`` the grid has ``cols`` columns and ``rows``
    rows (token ``a*rows + b``) for a frame of about that aspect ratio: boxes
    keep the height ``unit`` and are ``unit * rows / cols`` wide, so they are
    as square in pixels as the square grid's are on a square frame.

    Args:
        num_tokens (int): a square ``r*r``, or any number with
            ``rest_full``; ``cols * rows`` with ``grid``.
        unit (float): box side. Defaults to 0.5.
        rest_full (bool): the bootstrapped models' rule for a token count
            that is no square: the first ``floor(sqrt(N))**2`` tokens on the
            grid, the others on the whole image. Defaults to False.
        grid (tuple[int, int], optional): ``(cols, rows)``. Defaults to
            None (square).

    Returns:
        Tensor: ``(num_tokens, 4)`` corners.
    """
    if grid is not None:
        cols, rows = (int(v) for v in grid)
        if cols < 2 or rows < 2 or cols * rows != num_tokens:
            raise ValueError(
                f'token_grid={tuple(grid)} does not hold num_tokens='
                f'{num_tokens}: set (columns, rows), each >= 2, whose '
                'product is num_tokens (e.g. (7, 4) for 28 tokens on a '
                '16:9 frame).')
        units = (unit * rows / cols, unit)
        lo = [torch.arange(n, dtype=torch.float32) / (n - 1) * (1 - u)
              for n, u in zip((cols, rows), units)]
        gx = lo[0].view(cols, 1).expand(cols, rows)
        gy = lo[1].view(1, rows).expand(cols, rows)
        lo = torch.stack([gx, gy], dim=-1).reshape(num_tokens, 2)
        return torch.cat([lo, lo + torch.tensor(units)], dim=-1)
    r = int(num_tokens ** 0.5 + 1e-9) if rest_full \
        else int(round(num_tokens ** 0.5))
    if r * r != num_tokens and not rest_full or r < 2:
        raise ValueError(
            f'num_tokens={num_tokens} is not a square of an integer >= 2; '
            'the grid RoI initialisation needs e.g. 49, 64 or 81 tokens '
            "(or roi_init='grid_rest_full' or a token_grid in the arch).")
    steps = torch.arange(r, dtype=torch.float32) / (r - 1) * (1 - unit)
    gx = steps.view(r, 1).expand(r, r)  # x-index a varies along rows
    gy = steps.view(1, r).expand(r, r)
    lo = torch.stack([gx, gy], dim=-1).reshape(r * r, 2)
    grid = torch.cat([lo, lo + unit], dim=-1)
    full = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(num_tokens - r * r, 4)
    return torch.cat([grid, full], dim=0)


def grid_init_offsets(num_points: int, ndim: int = 2) -> Tensor:
    """Centred ``sqrt(P) x sqrt(P)`` grid ``(k + 0.5)/sqrt(P) - 0.5``, x fastest.

    For ``ndim == 3`` the temporal component is zero. Returns ``(P*ndim,)``.
    """
    r = int(round(num_points ** 0.5))
    if r * r != num_points:
        raise ValueError(f'num_points={num_points} must be a perfect square '
                         '(e.g. 36) for the grid offset initialisation.')
    steps = (torch.arange(r, dtype=torch.float32) + 0.5) / r - 0.5
    xs = steps.view(1, r).expand(r, r)
    ys = steps.view(r, 1).expand(r, r)
    pts = [xs.reshape(-1), ys.reshape(-1)]
    pts += [torch.zeros(num_points)] * (ndim - 2)
    return torch.stack(pts, dim=-1).reshape(-1)


def _sincos(values: Tensor, dims: int, max_temperature: float) -> Tensor:
    """``(..., k) -> (..., k * (dims // k))``: per value, the sines of the
    even-indexed and the cosines of the odd-indexed products with
    ``dims // k`` frequencies ``exp(linspace(0, ln max_temperature))``."""
    values = promote_half(values) * math.pi
    freqs = torch.linspace(0, math.log(max_temperature),
                           dims // values.shape[-1], dtype=values.dtype,
                           device=values.device).exp()
    angles = values.unsqueeze(-1) * freqs
    return torch.cat([angles[..., 0::2].sin(), angles[..., 1::2].cos()],
                     dim=-1).flatten(-2)


@torch.no_grad()
def tube_time_sincos(roi: Tensor, dims: int,
                     max_temperature: float = 128.0) -> Tensor:
    """Sinusoidal encoding of tubes' temporal corners ``(t1, t2)``:
    ``(..., 6) -> (..., dims)``, as :func:`roi_sincos` does for boxes."""
    return _sincos(roi[..., [2, 5]], dims, max_temperature)


@torch.no_grad()
def roi_sincos(roi: Tensor, dims: int, max_temperature: float = 128.0) -> Tensor:
    """Sinusoidal encoding of box corners, ``(..., 4) -> (..., dims)``.

    Each corner value (times pi) is multiplied by ``dims // 4`` frequencies
    ``exp(linspace(0, ln max_temperature))``; the sines of the even-indexed
    and the cosines of the odd-indexed products are concatenated per corner
    (the bootstrapped SparseFormers' ``pe_inject``, after the authors'
    ``modeling.py``). Tubes are encoded by their spatial corners.
    """
    if roi.shape[-1] == 6:
        roi = roi[..., [0, 1, 3, 4]]
    return _sincos(roi, dims, max_temperature)


def tube_rois(boxes: Tensor, replicates: int) -> Tensor:
    """Inflate ``(N, 4)`` boxes into ``(N*R, 6)`` tubes, replica-major.

    Replica ``k`` keeps every box and gets the temporal segment
    ``[k/R, (k+1)/R]``; corners are ``(x1, y1, t1, x2, y2, t2)``.
    """
    N = boxes.shape[0]
    tubes = []
    for k in range(replicates):
        t1 = boxes.new_full((N, 1), k / replicates)
        t2 = boxes.new_full((N, 1), (k + 1) / replicates)
        tubes.append(torch.cat([boxes[:, :2], t1, boxes[:, 2:], t2], dim=1))
    return torch.cat(tubes, dim=0)


def xy_to_xyt(t: Tensor, num_groups: int) -> Tensor:
    """Insert a zero ``t`` after every ``(x, y)`` pair along dim 0 (image
    coordinates, offsets or deltas -> video ones that do not move in
    time)."""
    pairs = t.reshape(num_groups, 2, *t.shape[1:])
    zeros = pairs.new_zeros((num_groups, 1) + tuple(t.shape[1:]))
    return torch.cat([pairs, zeros], dim=1).reshape(num_groups * 3,
                                                    *t.shape[1:])


def _grid_cells(count: int, side: float):
    """Centres (float64) and side of ``count`` grid cells along an axis, as
    :func:`grid_init_rois` lays them out."""
    lo = torch.arange(count, dtype=torch.float64) / (count - 1) * (1 - side)
    return lo + side / 2, side


def resample_grid_rois(rois: Tensor, grid, unit: float = 0.5):
    """Boxes of an ``r x r`` token grid -> a ``cols x rows`` grid.

    Target token ``a*rows + b`` (column ``a``, row ``b``) takes the source
    token nearest in grid position; its box keeps that token's offset from
    its grid cell and its size, scaled by how the cell size changes along
    each axis, around the new cell's centre. The grid initialisation of
    ``r x r`` thus becomes that of ``grid``.

    Args:
        rois (Tensor): ``(r*r, 4)`` corners.
        grid (tuple[int, int]): ``(cols, rows)``.
        unit (float): the grids' box height. Defaults to 0.5.

    Returns:
        tuple[Tensor, list[int]]: the ``(cols*rows, 4)`` corners (the
        dtype of ``rois``) and, per target token, its source token.
    """
    cols, rows = (int(v) for v in grid)
    n = rois.shape[0]
    r = int(round(n ** 0.5))
    if r * r != n or r < 2 or rois.shape[1] != 4:
        raise ValueError(
            f'only image weights with a square token grid can be resampled '
            f'to token_grid={tuple(grid)}; these have {n} tokens with '
            f'{rois.shape[1]}-number RoIs.')
    src_c, src_u = _grid_cells(r, unit)
    dst_x, dst_ux = _grid_cells(cols, unit * rows / cols)
    dst_y, dst_uy = _grid_cells(rows, unit)
    scale = torch.tensor([dst_ux / src_u, dst_uy / src_u], dtype=torch.float64)
    # the nearest source column / row of each target one
    a = [min(r - 1, int(i * (r - 1) / (cols - 1) + 0.5)) for i in range(cols)]
    b = [min(r - 1, int(j * (r - 1) / (rows - 1) + 0.5)) for j in range(rows)]
    box = rois.double()
    centre, size = (box[:, :2] + box[:, 2:]) / 2, box[:, 2:] - box[:, :2]
    source, out = [], []
    for i in range(cols):
        for j in range(rows):
            k = a[i] * r + b[j]
            offset = centre[k] - torch.stack([src_c[a[i]], src_c[b[j]]])
            c = torch.stack([dst_x[i], dst_y[j]]) + offset * scale
            half = size[k] * scale / 2
            out.append(torch.cat([c - half, c + half]))
            source.append(k)
    return torch.stack(out).to(rois.dtype), source
