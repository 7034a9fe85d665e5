import os.path as osp

import pytest
import torch
from mmpretrain.registry import MODELS

from sparseformer_mm.models import SparseFormer
from sparseformer_mm.utils import build_classifier

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
    assert SparseFormer._parse_arch('T') == SparseFormer.arch_zoo['tiny']
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
