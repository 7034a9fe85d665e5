import numpy as np
import pytest
import torch

from sparseformer_mm.models.layers import ClipCoordGrad, sample_points
from sparseformer_mm.models.layers.sampling import _cpu_chunks


def np_linear_sample(feat, pt):
    """Independent (bi/tri)linear interpolation, align_corners=False, zero
    padding. feat (C, *spatial) with spatial (H, W) or (T, H, W); pt in [0,1]
    ordered (x, y[, t])."""
    spatial = feat.shape[1:][::-1]  # (W, H[, T]) matches (x, y[, t])
    coords = [p * s - 0.5 for p, s in zip(pt, spatial)]
    base = [int(np.floor(c)) for c in coords]
    out = np.zeros(feat.shape[0])
    for corner in np.ndindex(*(2, ) * len(pt)):
        idx = [b + c for b, c in zip(base, corner)]
        w = np.prod([1 - abs(c - i) for c, i in zip(coords, idx)])
        if all(0 <= i < s for i, s in zip(idx, spatial)):
            out += w * feat[(slice(None), ) + tuple(idx[::-1])]
    return out


@pytest.mark.parametrize('spatial', [(6, 8), (3, 6, 8)])
def test_matches_independent_interpolation(spatial):
    ndim = len(spatial)
    feat = torch.randn(2, 4, *spatial, dtype=torch.float64)
    pts = torch.rand(2, 3, 5, ndim, dtype=torch.float64) * 1.2 - 0.1
    out = sample_points(feat, pts)
    assert out.shape == (2, 3, 5, 4)
    for b in range(2):
        for n in range(3):
            for p in range(5):
                exp = np_linear_sample(feat[b].numpy(), pts[b, n, p].numpy())
                np.testing.assert_allclose(out[b, n, p].numpy(), exp,
                                           atol=1e-10)


def test_half_features_are_sampled_in_fp32():
    feat = torch.randn(1, 4, 8, 8).half()
    out = sample_points(feat, torch.rand(1, 2, 3, 2))
    assert out.dtype == torch.float32


def test_dimension_mismatch_is_explained():
    with pytest.raises(ValueError, match='3-D points need a 5-D'):
        sample_points(torch.randn(1, 4, 8, 8), torch.rand(1, 2, 3, 3))


def _coord_grad(loss_scale, clip=True, H=8):
    torch.manual_seed(0)
    feat = torch.randn(1, 4, H, H) * 50  # steep: raw grads exceed 1/H
    pts = (torch.rand(1, 3, 5, 2) * 0.8 + 0.1).requires_grad_()
    out = sample_points(feat, pts, clip_grad=clip, loss_scale=loss_scale)
    (out.sum() * loss_scale).backward()  # what a loss scaler does
    return pts.grad


def test_coordinate_grad_is_clipped_to_one_cell():
    raw = _coord_grad(1.0, clip=False)
    clipped = _coord_grad(1.0)
    assert raw.abs().max() > 1 / 8  # the clip binds
    torch.testing.assert_close(clipped, raw.clamp(-1 / 8, 1 / 8))


def test_clip_scales_with_fp16_loss_scale():
    # Under loss scaling with g, the unscaled gradient must equal the fp32
    # clipped one; a scale-blind clip would cut it to (1/H)/g.
    g = 1024.0
    scaled = _coord_grad(g)
    torch.testing.assert_close(scaled / g, _coord_grad(1.0))
    blind = _coord_grad(g, clip=False).clamp(-1 / 8, 1 / 8) / g
    assert (blind.abs().max() * 100) < _coord_grad(1.0).abs().max()


def test_clip_is_identity_forward():
    x = torch.randn(3, requires_grad=True)
    y = ClipCoordGrad.apply(x, 0.1, 1.0)
    torch.testing.assert_close(y, x)


@pytest.mark.parametrize('spatial,tokens', [((9, 11), 12), ((3, 9, 11), 12),
                                            ((9, 11), 7)])
@pytest.mark.parametrize('threads', [2, 4])
def test_batch_one_token_chunks_match_one_thread(spatial, tokens, threads):
    """A single sample's tokens are split across threads on CPU inference;
    the values must be those of the one-thread (one-chunk) path, and of the
    independent interpolation."""
    ndim = len(spatial)
    feat = torch.randn(1, 5, *spatial)
    pts = torch.rand(1, tokens, 4, ndim) * 1.2 - 0.1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            single = sample_points(feat, pts)
        torch.set_num_threads(threads)
        with torch.no_grad():
            chunked = sample_points(feat, pts)
            k = _cpu_chunks(feat, pts)
        with_grad = sample_points(feat.requires_grad_(), pts)  # no chunks
    finally:
        torch.set_num_threads(before)
    assert k == max(d for d in range(1, threads + 1) if tokens % d == 0)
    assert chunked.shape == (1, tokens, 4, 5)
    assert torch.equal(chunked, single)
    assert torch.equal(with_grad.detach(), single)
    f = feat.detach()[0].double().numpy()
    ref = np.stack([np_linear_sample(f, p) for p in pts[0, 3].double().numpy()])
    np.testing.assert_allclose(chunked[0, 3].numpy(), ref, atol=1e-5)
