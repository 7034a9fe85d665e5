"""Image -> video weight rules beside VideoSparseFormer
(sparseformer_mm/models/backbones/inflation.py); the whole-model ones (a
static clip reproduces the image model) are in test_video_sparseformer.py."""
import pytest
import torch

from sparseformer_mm.models.backbones.inflation import resample_token_grid
from sparseformer_mm.models.layers import grid_init_rois


def test_resample_token_grid_maps_a_square_grid_onto_a_wide_one():
    emb = torch.arange(16.).unsqueeze(1).repeat(1, 3)  # token k holds k
    other = torch.randn(5)
    sd = {'initial_roi.weight': grid_init_rois(16),
          'initial_embedding.weight': emb, 'layers.0.x': other}
    out = resample_token_grid(sd, (7, 4))
    # a grid-initialised model becomes the wide grid's initialisation
    torch.testing.assert_close(out['initial_roi.weight'],
                               grid_init_rois(28, grid=(7, 4)))
    # nearest grid position: columns 0..6 read source columns 0,1,1,2,2,3,3
    got = out['initial_embedding.weight'][:, 0].view(7, 4)
    src_col = torch.tensor([0, 1, 1, 2, 2, 3, 3]).view(7, 1)
    assert torch.equal(got, (src_col * 4 + torch.arange(4)).float())
    assert out['layers.0.x'] is other
    # a learned RoI keeps its offset and size relative to its cell: token 0
    # moved right by 0.1 (of a 0.5-wide cell) and 0.04 narrower
    moved = sd['initial_roi.weight'].clone()
    moved[0] += torch.tensor([0.12, 0.0, 0.08, 0.0])
    out = resample_token_grid(dict(sd, **{'initial_roi.weight': moved}),
                              (7, 4))
    box, ref = out['initial_roi.weight'][0], grid_init_rois(28,
                                                            grid=(7, 4))[0]
    scale = (0.5 * 4 / 7) / 0.5
    torch.testing.assert_close((box[0] + box[2]) / 2,
                               (ref[0] + ref[2]) / 2 + 0.1 * scale)
    assert float(box[2] - box[0]) == pytest.approx((0.5 - 0.04) * scale)
    torch.testing.assert_close(box[1::2], ref[1::2])
    # the same grid is a round trip; one shared embedding stays as it is
    same = resample_token_grid(dict(sd, **{'initial_roi.weight': moved}),
                               (4, 4))
    torch.testing.assert_close(same['initial_roi.weight'], moved)
    assert torch.equal(same['initial_embedding.weight'], emb)
    shared = resample_token_grid(
        dict(sd, **{'initial_embedding.weight': emb[:1]}), (7, 4))
    assert shared['initial_embedding.weight'].shape == (1, 3)
    with pytest.raises(ValueError, match='square token grid'):
        resample_token_grid(dict(sd, **{'initial_roi.weight':
                                        grid_init_rois(12, rest_full=True)}),
                            (7, 4))
