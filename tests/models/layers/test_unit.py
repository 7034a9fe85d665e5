"""The op table: a new op is one ``OPS`` entry, for the forward and for
checkpoints (the arch read off a file, image -> video inflation)."""
import torch
import torch.nn as nn

from sparseformer_mm.archs import infer_arch
from sparseformer_mm.models import SparseFormer, VideoSparseFormer
from sparseformer_mm.models.backbones.inflation import \
    inflate_image_state_dict
from sparseformer_mm.models.layers import OPS, Op, unit_ops


def _build_gate(unit):
    unit.gate_proj = nn.Linear(unit.embed_dims, unit.embed_dims)


def _apply_gate(unit, s, p):
    s.tokens = s.tokens * torch.sigmoid(unit.gate_proj(s.tokens))


def _inflate_gate(sd):  # a video gate starts as twice the image one
    return dict(sd, **{'gate_proj.bias': sd['gate_proj.bias'] * 2})


GATE = Op('gate_proj.weight', _build_gate, _apply_gate, None, _inflate_gate)
ARCH = dict(num_tokens=4, num_points=4, stages=[
    dict(width=32, ops=('attn', 'gate', 'roi_adj', 'sampling', 'mlp'),
         num_heads=2)])


def test_a_new_op_is_one_entry(monkeypatch):
    monkeypatch.setitem(OPS, 'gate', GATE)
    image = SparseFormer(arch=ARCH).eval()
    assert isinstance(image.layers[0].gate_proj, nn.Linear)
    (tokens, ) = image(torch.randn(1, 3, 32, 32))
    assert tokens.shape == (1, 4, 32)
    sd = image.state_dict()
    # read off the weights by the op's key (in table order)
    assert unit_ops({k[len('layers.0.'):] for k in sd}) == (
        'attn', 'roi_adj', 'sampling', 'mlp', 'gate')
    assert infer_arch(sd)['stages'][0]['ops'] == (
        'attn', 'roi_adj', 'sampling', 'mlp', 'gate')
    # inflated by its own rule, the built-in ops' by theirs
    video = inflate_image_state_dict(sd, 2)
    torch.testing.assert_close(video['layers.0.gate_proj.bias'],
                               2 * sd['layers.0.gate_proj.bias'])
    assert video['layers.0.roi_offset_bias'].shape == (4 * 3, )
    model = VideoSparseFormer(arch=ARCH, replicates=2)
    model.load_state_dict(sd, strict=True)  # the pre-hook inflates
    assert torch.equal(model.layers[0].gate_proj.bias,
                       video['layers.0.gate_proj.bias'])


def test_a_unit_takes_its_stage_dict():
    stage = SparseFormer.parse_arch(ARCH | dict(stages=[dict(
        width=32, ops=('attn', 'mlp'), num_heads=2, mlp_ratio=2,
        mlp_act='quick_gelu', eps=1e-5)]))['stages'][0]
    from sparseformer_mm.models.layers import SparseFormerUnit
    unit = SparseFormerUnit(dict(stage, padding_mode='zeros',
                                 clip_sampling_grad=True))
    assert unit.embed_dims == 32 and unit.mlp.fc1.out_features == 64
    assert unit.mlp.act == 'quick_gelu' and unit.norm1.eps == 1e-5
    assert unit.attn.num_heads == 2
