import torch
import torch.nn.functional as F
from mmaction.registry import MODELS as ACTION_MODELS
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS


def test_mean_then_layernorm_in_both_registries():
    neck = MODELS.build(dict(type='TokenPooling', in_channels=8))
    # a registry builds in the current default scope, as configs do
    with DefaultScope.overwrite_default_scope('mmaction'):
        action_neck = ACTION_MODELS.build(dict(type='TokenPooling',
                                               in_channels=8))
    with torch.no_grad():
        neck.norm.weight.uniform_()
        neck.norm.bias.uniform_()
    action_neck.load_state_dict(neck.state_dict())  # same parameters
    x = torch.randn(3, 5, 8)
    expected = F.layer_norm(x.sum(1) / 5, (8, ), neck.norm.weight,
                            neck.norm.bias, 1e-6)
    (out, ) = neck((x, ))  # mmpretrain: a tuple of features
    torch.testing.assert_close(out, expected)
    # mmaction2: (features, loss_aux), called with data_samples
    feats, aux = action_neck((x, ), data_samples=None)
    torch.testing.assert_close(feats, expected)
    assert aux == {}


def test_width_mismatch_says_what_to_set():
    import pytest
    from sparseformer_mm.models.necks.token_pooling import TokenPooling
    with pytest.raises(ValueError, match="in_channels to 640"):
        TokenPooling(512)(torch.randn(2, 64, 640))


def test_cls_pooling_takes_token_zero():
    neck = MODELS.build(dict(type='TokenPooling', in_channels=8, pool='cls'))
    x = torch.randn(2, 5, 8)
    (out, ) = neck(x)
    torch.testing.assert_close(out, F.layer_norm(x[:, 0], (8, ), eps=1e-6))
    import pytest
    with pytest.raises(ValueError, match="pool must be 'mean' or 'cls'"):
        MODELS.build(dict(type='TokenPooling', in_channels=8, pool='max'))
