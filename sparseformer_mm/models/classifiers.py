"""Whole classifiers around a SparseFormer backbone, for converters and
tests: build one from an arch, and check converted weights against it."""
from typing import Tuple, Union

from mmengine.registry import DefaultScope

from ..checkpoint_formats import convert_released
from .backbones import SparseFormer


def build_classifier(arch: Union[str, dict], num_classes: int):
    """The mmpretrain ``ImageClassifier`` matching a reference model (built
    in mmpretrain's scope whatever scope an earlier Runner left current)."""
    from mmpretrain.registry import MODELS
    width = SparseFormer.parse_arch(arch)['stages'][-1]['width']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='SparseFormer', arch=arch),
            neck=dict(type='TokenPooling', in_channels=width),
            head=dict(type='LinearClsHead', num_classes=num_classes,
                      in_channels=width)))


def convert_sparseformer(src: str, ema: bool = False) -> Tuple[dict, dict]:
    """Load released / original-training weights from ``src``
    (weights-only) and return ``(checkpoint, arch)``.

    The checkpoint (``{'meta', 'state_dict'}``) loads into
    :func:`build_classifier` with ``strict=True``; this is verified here and
    a ``ValueError`` names any missing, unexpected or misshapen keys.
    """
    ckpt, arch = convert_released(src, ema=ema)
    state_dict = ckpt['state_dict']
    model = build_classifier(arch, ckpt['meta']['num_classes'])
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
