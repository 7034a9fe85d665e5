import torch
import torch.nn.functional as F
from mmaction.registry import MODELS as ACTION_MODELS
from mmpretrain.registry import MODELS


def test_mean_then_layernorm_in_both_registries():
    neck = MODELS.build(dict(type='TokenPooling', in_channels=8))
    assert ACTION_MODELS.get('TokenPooling') is type(neck)
    with torch.no_grad():
        neck.norm.weight.uniform_()
        neck.norm.bias.uniform_()
    x = torch.randn(3, 5, 8)
    (out, ) = neck((x, ))
    expected = F.layer_norm(x.sum(1) / 5, (8, ), neck.norm.weight,
                            neck.norm.bias, 1e-6)
    torch.testing.assert_close(out, expected)
