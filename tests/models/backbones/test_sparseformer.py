import os.path as osp

import pytest
import torch
from mmpretrain.registry import MODELS

from mmpretrain.structures import DataSample

from sparseformer_mm.models import SparseFormer, build_classifier

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
NANO = dict(num_tokens=16, focus_dims=64, cortex_dims=128, cortex_depth=2,
            num_points=16)


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    return {a: MODELS.build(dict(type='SparseFormer', arch=a)).eval()
            for a in ('tiny', 'small', 'base')}


@pytest.mark.parametrize('arch,tokens,dims', [('tiny', 49, 512),
                                              ('small', 64, 640),
                                              ('base', 81, 768)])
@pytest.mark.parametrize('hw', [(224, 224), (160, 160), (320, 320),
                                (192, 288)])
def test_output_shapes(models, arch, tokens, dims, hw):
    with torch.no_grad():
        out = models[arch](torch.randn(1, 3, *hw))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (1, tokens, dims)
    assert torch.isfinite(out[0]).all()


@pytest.mark.parametrize('arch,millions', [('tiny', 31.52), ('small', 47.58),
                                           ('base', 81.08)])
def test_classifier_parameter_counts(arch, millions):
    arch_dict = SparseFormer.arch_zoo[arch]
    model = build_classifier(arch_dict, 1000)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(n - millions) / millions < 0.005, n


def test_aliases_and_bad_arch():
    assert SparseFormer.parse_arch('T') == SparseFormer.parse_arch('tiny')
    with pytest.raises(ValueError, match="arch 'tinny' is not one of"):
        SparseFormer(arch='tinny')
    with pytest.raises(ValueError, match='exactly the keys'):
        SparseFormer(arch=dict(num_tokens=16, focus_dims=64))
    with pytest.raises(ValueError, match=r'takes \(B, 3, H, W\) RGB input'):
        SparseFormer(arch=NANO)(torch.randn(1, 1, 32, 32))


def test_roi_init_grid():
    m = SparseFormer(arch='tiny')
    rois = m.initial_roi.weight.detach()
    r = 7
    for a in range(r):
        for b in range(r):
            lo_x, lo_y = a / (r - 1) * 0.5, b / (r - 1) * 0.5
            expected = torch.tensor([lo_x, lo_y, lo_x + 0.5, lo_y + 0.5])
            torch.testing.assert_close(rois[a * r + b], expected)
    centres = (rois[:, :2] + rois[:, 2:]) / 2
    assert centres.min() == pytest.approx(0.25)
    assert centres.max() == pytest.approx(0.75)


def test_offset_bias_and_head_init():
    m = SparseFormer(arch='tiny')
    for idx in (0, 2):  # focusing unit and cortex block 0 sample
        unit = m.layers[idx]
        pts = unit.roi_offset_bias.detach().view(36, 2)
        k = torch.arange(6, dtype=torch.float32)
        grid = (k + 0.5) / 6 - 0.5
        # x varies fastest
        torch.testing.assert_close(pts[:6, 0], grid)
        torch.testing.assert_close(pts[::6, 1], grid)
        assert (pts[:6, 1] == grid[0]).all()
        assert (unit.roi_offset_module[1].weight == 0).all()
        assert (unit.roi_adjust_module[1].weight == 0).all()
        d = unit.embed_dims
        torch.testing.assert_close(
            unit.roi_offset_module[0].weight,
            torch.full((d, ), d ** -0.5))
        gen = unit.adaptive_mixing.parameter_generator
        assert (gen[2].weight == 0).all()
        # xavier-uniform bound for the (96, 96) block
        bound = (6 / (96 + 96)) ** 0.5
        cc = gen[2].bias[:96 * 96]
        assert cc.abs().max() <= bound and cc.std() > bound / 3
    # cortex blocks 1.. have no sampling, focusing unit is shared (one module)
    assert not hasattr(m.layers[3], 'roi_offset_bias')
    assert m.layers[0].repeats == 4


def test_drop_path_schedule():
    m = SparseFormer(arch='tiny', drop_path_rate=0.2)
    rates = m.layers[0].drop_path_rates + [
        m.layers[i].drop_path_rates[0] for i in range(2, 10)]
    torch.testing.assert_close(torch.tensor(rates),
                               torch.linspace(0, 0.2, 12))


def test_gradients_reach_rois_and_offset_heads():
    m = SparseFormer(arch=NANO).train()
    m(torch.randn(2, 3, 64, 64))[0].square().mean().backward()
    for name in ('initial_roi.weight', 'layers.0.roi_offset_module.1.weight',
                 'layers.0.roi_offset_bias', 'layers.0.roi_adjust_module.1.weight',
                 'layers.2.roi_offset_module.1.weight'):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_trace_returns_every_sampling_pass():
    m = SparseFormer(arch='tiny').eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = m(x, return_trace=True)
        plain = m(x)
    assert out['tokens'].shape == (2, 49, 512)
    assert out['rois'].shape == (2, 49, 4)
    assert len(out['passes']) == 5  # 4 focusing repeats + cortex block 0
    for p in out['passes']:
        assert p['rois'].shape == (2, 49, 4)
        assert p['points'].shape == (2, 49, 36, 2)
    # at init the RoIs do not move and points are the grid inside each RoI
    first = out['passes'][0]
    torch.testing.assert_close(first['rois'][0], m.initial_roi.weight)
    lo, hi = first['rois'][..., None, :2], first['rois'][..., None, 2:]
    assert ((first['points'] >= lo) & (first['points'] <= hi)).all()
    torch.testing.assert_close(plain[0], out['tokens'])  # same computation


def test_rois_excluded_from_weight_decay():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/sparseformer/sparseformer-tiny_8xb128_in1k.py'))
    model = build_classifier(NANO, 10)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    assert decay['backbone.initial_roi.weight'] == 0
    assert decay['backbone.layers.0.roi_offset_bias'] == 0  # 1-D param
    assert decay['backbone.layers.0.adaptive_mixing.m_beta'] == 0
    assert decay['backbone.layers.0.norm1.weight'] == 0
    assert decay['backbone.layers.0.attn.qkv.bias'] == 0
    assert decay['backbone.layers.0.attn.qkv.weight'] == 0.05
    assert decay['backbone.initial_embedding.weight'] == 0.05


# A layer stack no zoo entry has: a stage embedding on the shared-weight
# focusing unit, the bootstrapped op order with pe_inject, sampling in the
# first two cortex blocks, a class token before the plain blocks, CLIP's
# QuickGELU in the plain blocks, an MLP RoI head, border padding, mixing
# without biases. The class token enters before the sampling blocks, so RoI
# ops must leave it alone.
NEW_ARCH = dict(
    num_tokens=9, num_points=9, feat_channels=24, shared_embedding=True,
    stages=[
        dict(width=48, ops=('sampling', 'pe_inject', 'attn', 'mlp',
                            'roi_adj'), repeats=3, stage_embed=True,
             roi_adj_head='mlp', padding_mode='border', mixing_bias=False,
             mixing_inner_dims=16, mixing_out_points=12, head_dims=16),
        dict(width=64, ops=('attn', 'roi_adj', 'sampling', 'mlp'), depth=2,
             transition_norm=False, num_heads=4, cls_token=True),
        dict(width=64, ops=('attn', 'mlp'), depth=2,
             mlp_act='quick_gelu', head_dims=16, eps=1e-5),
    ])


def test_new_arch_from_data_builds_and_trains_a_step():
    torch.manual_seed(0)
    model = build_classifier(NEW_ARCH, 3)
    bb = model.backbone
    assert [type(m).__name__ for m in bb.layers] == [
        'SparseFormerUnit', 'Sequential', 'SparseFormerUnit',
        'SparseFormerUnit', 'SparseFormerUnit', 'SparseFormerUnit']
    assert len(bb.layers[1]) == 1  # transition without LayerNorm
    assert bb.cls_token_layer == 2 and bb.cls_embedding.weight.shape == (1, 64)
    assert bb.initial_embedding.weight.shape == (1, 48)  # shared
    unit0 = bb.layers[0]
    assert unit0.stage_embedding.weight.shape == (3, 48)
    assert unit0.attn.num_heads == 3 and bb.layers[2].attn.num_heads == 4
    assert unit0.adaptive_mixing.m_beta is None
    assert unit0.adaptive_mixing.out_proj.in_features == 24 * 12
    assert len(unit0.roi_adjust_module) == 4
    assert bb.layers[5].mlp.act == 'quick_gelu'
    assert bb.layers[5].norm1.eps == 1e-5 and unit0.norm1.eps == 1e-6
    x = torch.randn(4, 3, 48, 64)
    trace = bb(x, return_trace=True)
    assert trace['tokens'].shape == (4, 1 + 9, 64)
    assert len(trace['passes']) == 3 + 2  # 3 repeats + 2 sampling blocks
    # padding_mode reached the sampling of the first stage only
    assert unit0.padding_mode == 'border'
    assert bb.layers[2].padding_mode == 'zeros'

    labels = torch.tensor([0, 1, 2, 1])
    data = dict(inputs=x, data_samples=[
        DataSample().set_gt_label(int(y)) for y in labels])
    # plain gradient descent: a small step along -grad lowers the loss
    optim = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        loss = model(**model.data_preprocessor(data, True), mode='loss')
        total = sum(loss.values())
        losses.append(total.item())
        optim.zero_grad()
        total.backward()
        if not losses[1:]:  # every parameter is on the loss's graph
            no_grad = [n for n, p in model.named_parameters()
                       if p.grad is None]
            assert not no_grad, no_grad
            # the still-zero heads that move RoIs and points learn
            for unit in (bb.layers[0], bb.layers[2]):
                assert unit.roi_adjust_module[-1].weight.grad.abs().sum() > 0
                assert unit.roi_offset_module[1].weight.grad.abs().sum() > 0
        optim.step()
    assert losses[1] < losses[0]


def test_arch_errors_name_the_stage_and_option():
    bad = dict(NEW_ARCH, stages=[dict(width=32, ops=('attn', 'gate'))])
    with pytest.raises(ValueError, match=r"stages\[0\]: unknown ops \['gate'\]"):
        SparseFormer(arch=bad)
    bad = dict(NEW_ARCH, stages=[dict(width=32, ops=('attn', ), heads=2)])
    with pytest.raises(ValueError, match=r"stages\[0\]: unknown options "
                                         r"\['heads'\]"):
        SparseFormer(arch=bad)
    with pytest.raises(ValueError, match='set num_heads or head_dims'):
        SparseFormer(arch=dict(NEW_ARCH, stages=[dict(
            width=32, ops=('sampling', ), num_heads=2, head_dims=16)]))
    # a token grid must hold num_tokens and lay out the grid initialisation
    with pytest.raises(ValueError, match=r'token_grid=\(4, 4\) does not '
                                         'hold num_tokens=9'):
        SparseFormer(arch=dict(NEW_ARCH, num_tokens=9, token_grid=(4, 4)))
    with pytest.raises(ValueError, match="drop one of the two"):
        SparseFormer(arch=dict(NEW_ARCH, num_tokens=12, token_grid=(4, 3),
                               roi_init='grid_rest_full'))


def test_zoo_entries_are_stage_lists_and_short_form_is_the_same_model():
    tiny = SparseFormer.arch_zoo['tiny']
    assert [st['width'] for st in tiny['stages']] == [256, 512, 512]
    assert [st.get('repeats', 1) for st in tiny['stages']] == [4, 1, 1]
    short = dict(num_tokens=49, focus_dims=256, cortex_dims=512,
                 cortex_depth=8, num_points=36)
    assert SparseFormer.parse_arch(short) == SparseFormer.parse_arch('tiny')
    assert SparseFormer.arch_name(short) == "'tiny'"


def test_the_stem_runs_the_conv_it_builds():
    """The video stem's conv is stored as a (C, 3, 1, 7, 7) kernel (the
    video checkpoints' layout) and runs each frame through the image
    stem's computation; its own stride and padding are what run."""
    from sparseformer_mm.models import EarlyConvolution
    image, video = EarlyConvolution(8, ndim=2), EarlyConvolution(8, ndim=3)
    assert video.conv1.weight.shape == (8, 3, 1, 7, 7)
    with torch.no_grad():
        image.conv1.weight.copy_(video.conv1.weight.squeeze(2))
        image.conv1.bias.copy_(video.conv1.bias)
        clip = torch.randn(2, 3, 3, 32, 48)
        got = video(clip)
        want = torch.stack([image(clip[:, :, t]) for t in range(3)], dim=2)
        torch.testing.assert_close(got, want)
        assert got.shape == (2, 8, 3, 8, 12)
        for stem in (image, video):
            stem.conv1.stride = (1, 1)  # what is built is what runs
        assert image(clip[:, :, 0]).shape[-2:] == (16, 24)
        assert video(clip).shape[-2:] == (16, 24)
