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
