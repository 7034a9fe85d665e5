import math

import pytest
import torch

from sparseformer_mm.models.layers import (grid_init_offsets, grid_init_rois,
                                           make_sampling_points, roi_adjust)


def test_roi_adjust_2d_by_hand():
    roi = torch.tensor([[0.2, 0.1, 0.6, 0.5]])  # centre (0.4, 0.3), size 0.4
    delta = torch.tensor([[0.5, -0.25, math.log(2.0), math.log(0.5)]])
    out = roi_adjust(roi, delta)
    # centre (0.4 + 0.2, 0.3 - 0.1) = (0.6, 0.2); size (0.8, 0.2)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.1, 1.0, 0.3]]))


def test_roi_adjust_3d_tubes_and_flipped_corners():
    tube = torch.tensor([[0.6, 0.5, 0.75, 0.2, 0.1, 0.25]])  # flipped corners
    delta = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, math.log(3.0)]])
    out = roi_adjust(tube, delta)
    # x, y unchanged (sizes taken as |hi - lo|, re-ordered), t centre
    # 0.5 + 0.5 = 1.0, length 0.5 * 3 = 1.5
    torch.testing.assert_close(
        out, torch.tensor([[0.2, 0.1, 0.25, 0.6, 0.5, 1.75]]))


def test_roi_adjust_runs_in_fp32():
    roi = torch.rand(2, 3, 4).to(torch.bfloat16)
    out = roi_adjust(roi, torch.zeros(2, 3, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.float32


@pytest.mark.parametrize('ndim', [2, 3])
def test_sampling_points_standardised_per_axis(ndim):
    B, N, P = 2, 5, 16
    lo = torch.rand(B, N, ndim) * 0.5
    roi = torch.cat([lo, lo + torch.rand(B, N, ndim) * 0.5 + 0.1], -1)
    offset = torch.randn(B, N, P * ndim) * 3 + 7
    pts = make_sampling_points(roi, offset)
    assert pts.shape == (B, N, P, ndim)
    centre = (roi[..., :ndim] + roi[..., ndim:]) / 2
    size = roi[..., ndim:] - roi[..., :ndim]
    # mean at the centre, unbiased std = size / 3 (up to the 1e-5 eps)
    torch.testing.assert_close(pts.mean(2), centre, atol=1e-6, rtol=0)
    torch.testing.assert_close(pts.std(2), size / 3, atol=1e-5, rtol=1e-4)
    # the axes are standardised independently
    o = offset.view(B, N, P, ndim)
    expected = centre[:, :, None] + (o - o.mean(2, keepdim=True)) / (
        3 * (o.std(2, keepdim=True) + 1e-5)) * size[:, :, None]
    torch.testing.assert_close(pts, expected)


def test_grid_inits():
    rois = grid_init_rois(9)  # r = 3: lo in {0, .25, .5}
    torch.testing.assert_close(rois[5], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    off = grid_init_offsets(4).view(4, 2)
    torch.testing.assert_close(
        off, torch.tensor([[-.25, -.25], [.25, -.25], [-.25, .25], [.25, .25]]))
    off3 = grid_init_offsets(4, ndim=3).view(4, 3)
    assert (off3[:, 2] == 0).all()
    with pytest.raises(ValueError, match='perfect square'):
        grid_init_offsets(10)
    with pytest.raises(ValueError, match='square'):
        grid_init_rois(10)


@pytest.mark.parametrize('ndim', [2, 3])
def test_roi_sizes_are_clamped_and_stay_finite(ndim):
    from sparseformer_mm.models.layers.roi_geometry import (MAX_ROI_SIZE,
                                                            MIN_ROI_SIZE)
    roi = torch.tensor([[0.2] * ndim + [0.6] * ndim] * 3)
    scale = torch.tensor([[1e4], [-1e4], [float('inf')]])  # exp -> inf, 0
    delta = torch.cat([torch.zeros(3, ndim), scale.expand(3, ndim)], dim=-1)
    out = roi_adjust(roi, delta)
    size = out[:, ndim:] - out[:, :ndim]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(size[0], torch.full((ndim, ), MAX_ROI_SIZE))
    torch.testing.assert_close(size[1], torch.full((ndim, ), MIN_ROI_SIZE))
    torch.testing.assert_close(size[2], torch.full((ndim, ), MAX_ROI_SIZE))
    # centres are kept
    torch.testing.assert_close((out[:, ndim:] + out[:, :ndim]) / 2,
                               torch.full((3, ndim), 0.4))


def test_roi_clamp_leaves_values_and_gradients_inside_the_range_exact():
    g = torch.Generator().manual_seed(0)
    roi = torch.rand(4, 5, 4, generator=g)
    delta = (torch.randn(4, 5, 4, generator=g) * 0.5).requires_grad_()
    out = roi_adjust(roi, delta)
    # the unclamped formula, written out
    delta2 = delta.detach().clone().requires_grad_()
    c = (roi[..., :2] + roi[..., 2:]) / 2
    s = (roi[..., 2:] - roi[..., :2]).abs()
    c = c + delta2[..., :2] * s
    s = s * delta2[..., 2:].exp()
    ref = torch.cat([c - 0.5 * s, c + 0.5 * s], dim=-1)
    assert torch.equal(out, ref)
    w = torch.randn(out.shape, generator=g)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.equal(delta.grad, delta2.grad)
    # at the bound the size no longer follows delta (and nothing is NaN)
    d = torch.zeros(1, 4, requires_grad=True)
    big = roi_adjust(torch.tensor([[0.0, 0.0, 1.0, 1.0]]),
                     d + torch.tensor([[0.0, 0.0, 50.0, 0.0]]))
    big.sum().backward()
    assert torch.isfinite(d.grad).all()


def test_diverging_roi_heads_keep_the_backbone_finite():
    # RoI-adjust weights x20: without the clamp the sizes reach inf by the
    # third pass and tokens and gradients are NaN (checked when written)
    from sparseformer_mm.models import SparseFormer
    arch = dict(num_tokens=4, focus_dims=32, cortex_dims=32, cortex_depth=1,
                num_points=4)
    m = SparseFormer(arch=arch, num_heads=2, feat_channels=8)
    g = torch.Generator().manual_seed(0)
    w = m.layers[0].roi_adjust_module[1].weight
    w.data.copy_(torch.randn(w.shape, generator=g) * 20)
    out = m(torch.randn(2, 3, 32, 32, generator=g), return_trace=True)
    assert torch.isfinite(out['tokens']).all()
    for p in out['passes']:
        size = p['rois'][..., 2:] - p['rois'][..., :2]
        assert torch.isfinite(p['points']).all()
        assert (size <= 4.0 + 1e-6).all() and (size >= 1e-3 - 1e-6).all()
    out['tokens'].sum().backward()
    assert all(torch.isfinite(q.grad).all() for q in m.parameters()
               if q.grad is not None)


def test_token_grid_of_a_wide_frame():
    """``grid=(cols, rows)``: token a*rows + b in column a, row b; boxes of
    height 0.5 that are square in pixels on a frame of aspect cols/rows,
    from the top-left corner to the bottom-right one."""
    cols, rows = 7, 4
    rois = grid_init_rois(cols * rows, grid=(cols, rows))
    assert rois.shape == (28, 4)
    w, h = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    # in pixels of a (7 * s) x (4 * s) frame: w * 7 == h * 4
    torch.testing.assert_close(w * cols, h * rows)
    torch.testing.assert_close(h, torch.full((28, ), 0.5))
    torch.testing.assert_close(rois[0, :2], torch.zeros(2))
    torch.testing.assert_close(rois[-1, 2:], torch.ones(2))
    grid = rois[:, 0].view(cols, rows), rois[:, 1].view(cols, rows)
    assert (grid[0].diff(dim=0) > 0).all() and (grid[0].diff(dim=1) == 0).all()
    assert (grid[1].diff(dim=1) > 0).all() and (grid[1].diff(dim=0) == 0).all()
    # the square grid, spelled out, is the default one
    assert torch.equal(grid_init_rois(16, grid=(4, 4)), grid_init_rois(16))
    for bad in ((7, 3), (28, 1)):
        with pytest.raises(ValueError, match='token_grid'):
            grid_init_rois(28, grid=bad)
