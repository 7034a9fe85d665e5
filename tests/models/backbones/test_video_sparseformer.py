import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.registry import DefaultScope

from reference_forward import random_released_state_dict
from sparseformer_mm.models import VideoSparseFormer
from sparseformer_mm.models.backbones.inflation import \
    inflate_image_state_dict
from sparseformer_mm.models import build_classifier, convert_sparseformer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
NANO = dict(num_tokens=9, focus_dims=64, cortex_dims=128, cortex_depth=2,
            num_points=9)


def recognizer(arch, replicates, num_classes=1000, **backbone):
    with DefaultScope.overwrite_default_scope('mmaction'):
        return MODELS.build(dict(
            type='Recognizer3D',
            backbone=dict(type='VideoSparseFormer', arch=arch,
                          replicates=replicates, **backbone),
            neck=dict(type='TokenPooling', in_channels=arch['cortex_dims']),
            cls_head=dict(type='SparseFormerHead', num_classes=num_classes,
                          in_channels=arch['cortex_dims'])))


@pytest.mark.filterwarnings('ignore:clip of')  # T < R warns, still works
@pytest.mark.parametrize('T', [1, 3, 8])
def test_shapes_any_clip_length(T):
    m = VideoSparseFormer(arch=NANO, replicates=4).eval()
    with torch.no_grad():
        (tokens, ) = m(torch.randn(2, 3, T, 48, 64))
    assert tokens.shape == (2, 36, 128)


def test_tube_init_and_inflated_shapes():
    m = VideoSparseFormer(arch='tiny', replicates=8)
    rois = m.initial_roi.weight.detach()
    assert rois.shape == (392, 6)
    img = VideoSparseFormer.__mro__[1](arch='tiny').initial_roi.weight
    for k in range(8):
        block = rois[k * 49:(k + 1) * 49]
        torch.testing.assert_close(block[:, [0, 1, 3, 4]], img.detach())
        assert torch.allclose(block[:, 2], torch.tensor(k / 8))
        assert torch.allclose(block[:, 5], torch.tensor((k + 1) / 8))
    unit = m.layers[0]
    assert unit.roi_offset_bias.shape == (108, )
    assert (unit.roi_offset_bias.view(36, 3)[:, 2] == 0).all()
    assert unit.roi_adjust_module[1].weight.shape == (6, 256)
    assert m.feat_extractor.conv1.weight.shape == (96, 3, 1, 7, 7)


def test_inflation_rules():
    img = build_classifier(NANO, 10).backbone.state_dict()
    with torch.no_grad():
        img['layers.0.roi_offset_bias'].normal_()
        img['layers.0.roi_adjust_module.1.weight'].normal_()
    vid = inflate_image_state_dict(img, replicates=3)
    P = NANO['num_points']
    off = vid['layers.0.roi_offset_bias'].view(P, 3)
    torch.testing.assert_close(off[:, :2],
                               img['layers.0.roi_offset_bias'].view(P, 2))
    assert (off[:, 2] == 0).all()
    adj = vid['layers.0.roi_adjust_module.1.weight']
    src = img['layers.0.roi_adjust_module.1.weight']
    torch.testing.assert_close(adj[[0, 1, 3, 4]], src)
    assert (adj[[2, 5]] == 0).all()
    emb = vid['initial_embedding.weight']
    for k in range(3):  # replica-major
        torch.testing.assert_close(emb[k * 9:(k + 1) * 9],
                                   img['initial_embedding.weight'])
    assert torch.equal(vid['feat_extractor.conv1.weight'][:, :, 0],
                       img['feat_extractor.conv1.weight'])


@pytest.mark.parametrize('T,R', [(8, 8), (12, 4), (1, 1)])
def test_static_clip_reproduces_image_model(tmp_path, T, R):
    """Inflated model on one image repeated T times == image model."""
    sd = random_released_state_dict(seed=5, num_tokens=9, focus=64,
                                    cortex=128, depth=2, points=9,
                                    classes=7)
    src = tmp_path / 'img.pth'
    torch.save(sd, src)
    ckpt, arch = convert_sparseformer(str(src))
    image = build_classifier(arch, 7).eval()
    image.load_state_dict(ckpt['state_dict'], strict=True)
    dst = tmp_path / 'video.pth'
    res = subprocess.run([sys.executable, 'tools/model_converters/'
                          'inflate_to_video.py', str(src), str(dst),
                          '--replicates', str(R), '--num-frames', str(T)],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    video = recognizer(arch, R, num_classes=7).eval()
    video.load_state_dict(torch.load(dst)['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 80)
    clip = x[:, :, None].expand(-1, -1, T, -1, -1)
    with torch.no_grad():
        expected = image(x, mode='tensor')
        feats, _ = video.extract_feat(clip[:, None])  # (B, views, C, T, H, W)
        got = video.cls_head(feats)
    assert (got - expected).abs().max() < 1e-4
    assert expected.std() > 0.1


def test_backbone_pretrained_inflates_automatically(tmp_path):
    image = build_classifier(NANO, 5)
    path = tmp_path / 'image_epoch_1.pth'
    torch.save({'state_dict': image.state_dict(), 'meta': {}}, path)
    video = recognizer(NANO, 2, num_classes=400, pretrained=str(path))
    video.init_weights()
    expected = inflate_image_state_dict(
        {k[9:]: v for k, v in image.state_dict().items()
         if k.startswith('backbone.')}, 2)
    for k, v in video.backbone.state_dict().items():
        assert torch.equal(v, expected[k]), k
    wrong = recognizer(dict(NANO, num_points=16), 2, pretrained=str(path))
    with pytest.raises(ValueError, match='does not fit'):
        wrong.init_weights()


@pytest.mark.slow
def test_inflate_tool_rejects_short_clips(tmp_path):
    res = subprocess.run([sys.executable, 'tools/model_converters/'
                          'inflate_to_video.py', 'x.pth', str(tmp_path / 'y'),
                          '--replicates', '8', '--num-frames', '4'],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode != 0 and '--num-frames 4 < --replicates 8' in res.stderr


def test_first_pass_samples_each_replica_in_its_segment():
    m = VideoSparseFormer(arch=NANO, replicates=4).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 8, 48, 48), return_trace=True)
    t = out['passes'][0]['points'][0, ..., 2]  # (N*R, P)
    for k in range(4):  # at init every point sits mid-segment in time
        torch.testing.assert_close(t[k * 9:(k + 1) * 9],
                                   torch.full((9, 9), (k + 0.5) / 4))


def test_bad_layouts_are_explained():
    m = VideoSparseFormer(arch=NANO, replicates=4)
    with pytest.raises(ValueError, match="FormatShape\\(input_format='NCTHW'"):
        m(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='RGB input'):
        m(torch.randn(1, 8, 3, 32, 32))  # NTCHW
    with pytest.warns(UserWarning, match='shorter than replicates=4'):
        m(torch.randn(1, 3, 2, 32, 32))


def _save(model, path):
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def test_wrong_image_arch_says_which_arch_to_set(tmp_path):
    path = _save(build_classifier(NANO, 5), tmp_path / 'image.pth')
    other = dict(NANO, cortex_dims=64)
    model = recognizer(other, 2, pretrained=path)
    with pytest.raises(ValueError) as info:
        model.init_weights()
    msg = str(info.value)
    assert 'it is an image SparseFormer of arch' in msg
    assert "'cortex_dims': 128" in msg and 'Set model.backbone.arch=' in msg
    assert "cls_head's in_channels=128" in msg
    # released variants are named
    tiny = VideoSparseFormer.arch_zoo['tiny']
    assert VideoSparseFormer.arch_name(dict(tiny)) == "'tiny'"


def test_video_checkpoint_with_other_replicates_names_them(tmp_path):
    path = _save(recognizer(NANO, 2), tmp_path / 'video_r2.pth')
    with pytest.raises(ValueError,
                       match=r'18 = 9 x 2 tokens \(replicates=2\)\. Set '
                             r'model.backbone.replicates=2'):
        recognizer(NANO, 4, pretrained=path, pretrained2d=False).init_weights()
    # a token count that is no multiple of the arch's tokens
    path = _save(recognizer(dict(NANO, num_tokens=16), 1),
                 tmp_path / 'video_16.pth')
    with pytest.raises(ValueError, match='16 tokens, not a multiple of the '
                                         '9 tokens'):
        recognizer(NANO, 2, pretrained=path, pretrained2d=False).init_weights()
    # the matching model loads it
    recognizer(NANO, 2, pretrained=_save(recognizer(NANO, 2),
                                         tmp_path / 'ok.pth'),
               pretrained2d=False).init_weights()


def test_heads_that_do_not_divide_the_widths_say_what_to_set():
    with pytest.raises(ValueError, match='num_heads=64 does not divide '
                                         'the stage width=32.*'
                                         'model.backbone.num_heads.*e.g. 32'):
        VideoSparseFormer(arch=dict(NANO, focus_dims=32, cortex_dims=96),
                          replicates=2)


def test_unknown_arch_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"arch 'smal' is not one of "
                                         r"\['b', 'base', 'btsp-augreg-base', "
                                         r".*'small', 't', 'tiny'\]"):
        VideoSparseFormer(arch='smal', replicates=2)


def _perturbed_image_weights(arch, seed=0):
    """An image SparseFormer's backbone weights with every head moving
    (the reference init leaves RoI and offset heads at zero)."""
    from sparseformer_mm.models import SparseFormer
    torch.manual_seed(seed)
    image = SparseFormer(arch=arch).eval()
    with torch.no_grad():
        for name, p in image.named_parameters():
            if name.endswith('weight') and p.dim() == 2:
                p.add_(torch.randn_like(p) * 0.05)
    return image


def test_every_way_of_loading_image_weights_inflates(tmp_path):
    image = _perturbed_image_weights(NANO)
    expected = inflate_image_state_dict(image.state_dict(), 3)
    ckpt = tmp_path / 'image.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               image.state_dict().items()}, 'meta': {}}, ckpt)

    def check(video):
        for k, v in video.state_dict().items():
            assert torch.equal(v, expected[k]), k

    # a plain load_state_dict of the backbone, strict
    video = VideoSparseFormer(arch=NANO, replicates=3)
    video.load_state_dict(image.state_dict(), strict=True)
    check(video)
    # load_from: mmengine's load_checkpoint on the whole recognizer
    from mmengine.runner import load_checkpoint
    model = recognizer(NANO, 3)
    load_checkpoint(model, str(ckpt), strict=False, logger='silent')
    check(model.backbone)
    # init_cfg Pretrained with the backbone's prefix
    model = recognizer(NANO, 3, init_cfg=dict(
        type='Pretrained', checkpoint=str(ckpt), prefix='backbone.'))
    model.init_weights()
    check(model.backbone)
    # video weights load unchanged
    again = VideoSparseFormer(arch=NANO, replicates=3)
    again.load_state_dict(video.state_dict(), strict=True)
    check(again)


# Bootstrapped-style layer stack (stage embeddings, pe_inject, an MLP RoI
# head, a shared embedding, border padding, bias-free mixing) without a class
# token: attention over R identical copies of every token equals attention
# over one, so a static clip must give the image output.
STAGED = dict(
    num_tokens=9, num_points=9, feat_channels=16, shared_embedding=True,
    stages=[
        dict(width=32, ops=('sampling', 'pe_inject', 'attn', 'mlp',
                            'roi_adj'), repeats=2, stage_embed=True,
             roi_adj_head='mlp', padding_mode='border', mixing_bias=False,
             head_dims=16),
        dict(width=48, ops=('sampling', 'pe_inject'), transition_norm=False),
        dict(width=48, ops=('attn', 'mlp'), depth=2, head_dims=16,
             mlp_act='quick_gelu'),
    ])


def test_staged_arch_static_clip_reproduces_image_model():
    image = _perturbed_image_weights(STAGED, seed=1)
    video = VideoSparseFormer(arch=STAGED, replicates=4).eval()
    video.load_state_dict(image.state_dict(), strict=True)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        (want, ) = image(x)
        (got, ) = video(x[:, :, None].expand(-1, -1, 6, -1, -1))
    for k in range(4):
        torch.testing.assert_close(got[:, k * 9:(k + 1) * 9], want,
                                   atol=1e-5, rtol=1e-4)
    assert want.std() > 0.1


def test_bootstrapped_video_static_clip_and_temporal_encoding():
    """A bootstrapped arch (class token, pe_inject) inflated to tubes: a
    static clip gives the image output; moving the tubes in time changes
    the output once the temporal encoding is trained (non-zero)."""
    from sparseformer_mm.archs import btsp_arch
    arch = btsp_arch(8, 64, 128, 2, clip=True)
    image = _perturbed_image_weights(arch, seed=2)
    video = VideoSparseFormer(arch=arch, replicates=3).eval()
    video.load_state_dict(image.state_dict(), strict=True)
    assert (video.layers[0].pe_time[1].weight == 0).all()
    x = torch.randn(2, 3, 48, 64)
    clip = x[:, :, None].expand(-1, -1, 6, -1, -1)
    with torch.no_grad():
        (want, ) = image(x)
        (got, ) = video(clip)
    assert got.shape == (2, 1 + 8 * 3, 128)
    # within 1e-4 (the bar): float noise, not a difference
    torch.testing.assert_close(got[:, 0], want[:, 0], atol=1e-4, rtol=0)
    for k in range(3):
        torch.testing.assert_close(got[:, 1 + 8 * k:1 + 8 * (k + 1)],
                                   want[:, 1:], atol=1e-4, rtol=0)
    # same boxes, tubes moved in time: the encoding sees it
    with torch.no_grad():
        for m in video.modules():
            if hasattr(m, 'pe_time'):
                m.pe_time[1].weight.normal_(std=0.05)
        (before, ) = video(clip)
        video.initial_roi.weight[:, [2, 5]] = \
            video.initial_roi.weight[:, [2, 5]] * 0.5
        (after, ) = video(clip)
    assert (after - before).abs().max() > 1e-3


def test_image_weights_onto_a_token_grid_of_the_frames_shape(tmp_path):
    """``arch token_grid=(5, 3)``: a 3 x 3 image checkpoint loads through
    ``pretrained``, resampled (inflation.resample_token_grid),
    then inflated; the model runs on wide clips."""
    from sparseformer_mm.models.backbones.inflation import \
        resample_token_grid
    image = build_classifier(NANO, 5)
    path = tmp_path / 'image.pth'
    torch.save({'state_dict': image.state_dict(), 'meta': {}}, path)
    wide = dict(NANO, num_tokens=15, token_grid=(5, 3))
    video = recognizer(wide, 2, num_classes=4, pretrained=str(path))
    video.init_weights()
    image_sd = {k[9:]: v for k, v in image.state_dict().items()
                if k.startswith('backbone.')}
    expected = inflate_image_state_dict(resample_token_grid(image_sd, (5, 3)),
                                        2)
    for k, v in video.backbone.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert video.backbone.num_total_tokens == 30
    tokens = video.backbone(torch.randn(1, 3, 4, 36, 64))[0]
    assert tokens.shape == (1, 30, 128) and torch.isfinite(tokens).all()
    # without a token grid the token counts still have to match, and the
    # message points at token_grid
    with pytest.raises(ValueError, match='does not fit') as info:
        recognizer(dict(NANO, num_tokens=16), 2,
                   pretrained=str(path)).init_weights()
    assert 'add token_grid=(cols, rows)' in str(info.value)


def test_token_grid_of_the_same_count_in_another_layout(tmp_path):
    """``token_grid=(8, 2)`` and a 4 x 4 image checkpoint (16 tokens both):
    the file's RoIs lie on the square grid, so it is resampled (the grid
    was once skipped when the counts matched); a checkpoint trained on the
    8 x 2 grid itself loads as it is."""
    from sparseformer_mm.models.backbones.inflation import \
        resample_token_grid
    from sparseformer_mm.models.layers import tube_rois
    square = dict(NANO, num_tokens=16)
    wide = dict(square, token_grid=(8, 2))
    for arch, resampled in ((square, True), (wide, False)):
        image = build_classifier(arch, 5)
        with torch.no_grad():  # trained RoIs: near, not at, their grid
            roi = image.backbone.initial_roi.weight
            roi.add_(torch.randn(roi.shape) * 0.01)
        path = tmp_path / 'image.pth'
        torch.save({'state_dict': image.state_dict()}, path)
        video = recognizer(wide, 2, num_classes=5, pretrained=str(path))
        video.init_weights()
        image_sd = {k[9:]: v for k, v in image.state_dict().items()
                    if k.startswith('backbone.')}
        want = resample_token_grid(image_sd, (8, 2)) if resampled \
            else image_sd
        got = video.backbone.initial_roi.weight.detach()
        torch.testing.assert_close(got, tube_rois(
            want['initial_roi.weight'], 2), rtol=0, atol=0)
        # the wide grid's boxes are 2/8 as wide as they are high
        box = got[:16]
        aspect = ((box[:, 3] - box[:, 0]) / (box[:, 4] - box[:, 1])).mean()
        assert float(aspect) == pytest.approx(2 / 8, rel=0.1)
