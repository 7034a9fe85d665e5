"""Whole classifiers around a SparseFormer backbone, for converters and
tests: build one from an arch, and check converted weights against it."""
from typing import Tuple, Union

from mmengine.registry import DefaultScope

from ..checkpoint_formats import convert_released
from .backbones import SparseFormer


def classifier_parts(arch: Union[str, dict], num_classes: int,
                     head_bias: bool = True) -> dict:
    """Neck and head configs that carry a reference model's final ``norm``
    and ``proj``: mean pooling (or the class token, for an arch that
    inserts one) with the last stage's LayerNorm eps, then a linear
    classifier, or a bias-free projection to an embedding of width
    ``num_classes`` (CLIP's) when ``head_bias`` is False."""
    last = SparseFormer.parse_arch(arch)['stages']
    cls = any(st['cls_token'] for st in last)
    width, eps = last[-1]['width'], last[-1]['eps']
    neck = dict(type='TokenPooling', in_channels=width, eps=eps,
                pool='cls' if cls else 'mean')
    head = dict(type='LinearClsHead', num_classes=num_classes,
                in_channels=width) if head_bias else dict(
                    type='ZeroShotClsHead', in_channels=width,
                    embed_dims=num_classes)
    return dict(neck=neck, head=head)


def build_classifier(arch: Union[str, dict], num_classes: int,
                     head_bias: bool = True):
    """The mmpretrain ``ImageClassifier`` matching a reference model (built
    in mmpretrain's scope whatever scope an earlier Runner left current);
    see :func:`classifier_parts`."""
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='SparseFormer', arch=arch),
            **classifier_parts(arch, num_classes, head_bias)))


def convert_sparseformer(src: str, ema: bool = False) -> Tuple[dict, dict]:
    """Load released / original-training weights from ``src``
    (weights-only) and return ``(checkpoint, arch)``.

    The checkpoint (``{'meta', 'state_dict'}``) loads into
    :func:`build_classifier` with ``strict=True``; this is verified here and
    a ``ValueError`` names any missing, unexpected or misshapen keys.
    """
    ckpt, arch = convert_released(src, ema=ema)
    state_dict = ckpt['state_dict']
    model = build_classifier(arch, ckpt['meta']['num_classes'],
                             ckpt['meta']['head_bias'])
    expected = model.state_dict()
    unexpected = sorted(set(state_dict) - set(expected))
    missing = sorted(set(expected) - set(state_dict))
    if unexpected or missing:
        raise ValueError(
            f'{src} does not match a SparseFormer with arch {arch}: '
            f'unexpected keys {unexpected[:20]}'
            f'{" ..." if len(unexpected) > 20 else ""}; '
            f'missing keys {missing[:20]}{" ..." if len(missing) > 20 else ""}')
    bad = [f'{k}: file {tuple(state_dict[k].shape)} vs model '
           f'{tuple(expected[k].shape)}' for k in expected
           if expected[k].shape != state_dict[k].shape]
    if bad:
        raise ValueError(f'{src}: shape mismatch for {bad[:10]}')
    model.load_state_dict(state_dict, strict=True)
    return ckpt, arch
