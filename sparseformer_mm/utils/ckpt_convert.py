"""Convert released / original SparseFormer weights to mmpretrain checkpoints."""
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from ..checkpoint_safety import load_weights_only

# Original training code -> reference library names (applied in order, on
# whole dotted components).
LEGACY_RENAMES = (
    ('attn.in_proj_weight', 'attn.qkv.weight'),
    ('attn.in_proj_bias', 'attn.qkv.bias'),
    ('attn.out_proj', 'attn.proj'),
    ('tuo_proj', 'out_proj'),
    ('token_roi', 'initial_roi'),
    ('token_embedding', 'initial_embedding'),
    ('ln_attn', 'norm1'),
    ('ffn.0', 'norm2'),
    ('ffn.1', 'mlp.fc1'),
    ('ffn.3', 'mlp.fc2'),
    ('head.norm', 'norm'),
    ('head.classifier', 'proj'),
)


def _rename(key: str, old: str, new: str) -> str:
    return re.sub(r'(^|\.)' + re.escape(old) + r'(?=\.|$)',
                  lambda m: m.group(1) + new, key)


def extract_state_dict(ckpt: dict, ema: bool = False,
                       src: str = '<checkpoint>') -> Dict[str, torch.Tensor]:
    """Pick the flat reference-layout state dict out of a loaded file.

    Accepts the library's flat ``*_converted.pth`` and the original training
    code's ``{'model', 'model_ema', ...}`` (older key names are renamed).
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src}: expected a dict of tensors, got '
                         f'{type(ckpt).__name__}')
    if 'state_dict' in ckpt and any(
            k.startswith('backbone.') for k in ckpt['state_dict']):
        raise ValueError(f'{src} is already an mmpretrain checkpoint '
                         '(keys start with "backbone."); load it directly.')
    if ema:
        if 'model_ema' not in ckpt:
            raise ValueError(f'--ema given but {src} has no "model_ema" entry '
                             f'(top-level keys: {sorted(ckpt)[:10]})')
        ckpt = ckpt['model_ema']
        if isinstance(ckpt, dict) and 'state_dict_ema' in ckpt:
            ckpt = ckpt['state_dict_ema']
    else:
        for key in ('model', 'state_dict', 'module'):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not any(torch.is_tensor(v) for v in ckpt.values()):
        raise ValueError(f'{src} holds no tensors at its top level or under '
                         f'"model" / "state_dict"; its keys are '
                         f'{sorted(ckpt)[:10]}')
    out = OrderedDict()
    for key, value in ckpt.items():
        if not torch.is_tensor(value):
            continue
        if key.startswith('module.'):
            key = key[len('module.'):]
        for old, new in LEGACY_RENAMES:
            key = _rename(key, old, new)
        out[key] = value
    return out


def infer_arch(sd: Dict[str, torch.Tensor], src: str = '<checkpoint>') -> dict:
    """Read ``arch`` (num_tokens, widths, depth, points) off the tensors."""
    needed = ('initial_roi.weight', 'initial_embedding.weight',
              'layers.0.roi_offset_bias')
    missing = [k for k in needed if k not in sd]
    if missing:
        some = sorted(sd)[:8]
        raise ValueError(
            f'{src} is not a SparseFormer checkpoint: missing {missing}. '
            f'Its first keys are {some}.')
    num_tokens, focus_dims = sd['initial_embedding.weight'].shape
    ndim = sd['initial_roi.weight'].shape[1] // 2
    num_points = sd['layers.0.roi_offset_bias'].numel() // ndim
    units = sorted({int(m.group(1)) for k in sd
                    for m in [re.match(r'layers\.(\d+)\.norm1\.', k)] if m})
    has_transition = 'layers.1.0.weight' in sd
    cortex_dims = sd['layers.1.0.weight'].shape[0] if has_transition \
        else focus_dims
    return dict(num_tokens=int(num_tokens), focus_dims=int(focus_dims),
                cortex_dims=int(cortex_dims), cortex_depth=len(units) - 1,
                num_points=int(num_points))


def to_mmpretrain(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Reference layout -> ``ImageClassifier`` (backbone/neck/head) layout."""
    out = OrderedDict()
    for key, value in sd.items():
        if key.startswith('norm.'):
            out['neck.' + key] = value
        elif key.startswith('proj.'):
            out['head.fc.' + key[len('proj.'):]] = value
        else:
            out['backbone.' + key] = value
    return out


def prefixed_state_dict(ckpt: dict, src: str = '<checkpoint>') -> dict:
    """Weights keyed ``backbone.`` / ``neck.`` / ``head.`` (or ``cls_head.``)
    from a checkpoint of ours (mmpretrain or mmaction2) or from released /
    original-training SparseFormer weights."""
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if isinstance(sd, dict) and any(k.startswith('backbone.') for k in sd):
        return sd
    return to_mmpretrain(extract_state_dict(ckpt, src=src))


def build_classifier(arch: dict, num_classes: int):
    """The mmpretrain ImageClassifier matching a reference model (built in
    mmpretrain's scope whatever scope an earlier Runner left current)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='SparseFormer', arch=arch),
            neck=dict(type='TokenPooling', in_channels=arch['cortex_dims']),
            head=dict(type='LinearClsHead', num_classes=num_classes,
                      in_channels=arch['cortex_dims'])))


def convert_sparseformer(src: str, ema: bool = False) -> Tuple[dict, dict]:
    """Load ``src`` weights-only and return ``(checkpoint, arch)``.

    The returned checkpoint (``{'meta', 'state_dict'}``) loads into
    :func:`build_classifier` with ``strict=True``; this is verified here and
    a ``ValueError`` names any missing or unexpected keys.
    """
    sd = extract_state_dict(load_weights_only(src), ema=ema, src=src)
    arch = infer_arch(sd, src)
    state_dict = to_mmpretrain(sd)
    num_classes = state_dict['head.fc.weight'].shape[0] \
        if 'head.fc.weight' in state_dict else 1000
    model = build_classifier(arch, num_classes)
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
    meta = dict(arch=arch, num_classes=num_classes, source=str(src), ema=ema)
    return dict(meta=meta, state_dict=state_dict), arch


def inflate_checkpoint(src: str, replicates: int) -> dict:
    """An image checkpoint (ours, or released / original weights) as an
    mmaction2 ``Recognizer3D`` checkpoint for VideoSparseFormer.

    The backbone is inflated (see ``inflate_image_state_dict``); the neck's
    LayerNorm is kept and the image head becomes ``cls_head.fc_cls``.
    """
    from ..models.backbones.video_sparseformer import inflate_image_state_dict
    sd = prefixed_state_dict(load_weights_only(src), src)
    conv = sd.get('backbone.feat_extractor.conv1.weight')
    if conv is None or conv.dim() != 4:
        raise ValueError(f'{src} is not an image SparseFormer checkpoint '
                         '(no 2-D backbone.feat_extractor.conv1.weight)')
    backbone = {k[len('backbone.'):]: v for k, v in sd.items()
                if k.startswith('backbone.')}
    arch = infer_arch(backbone, src)
    out = OrderedDict(('backbone.' + k, v) for k, v in
                      inflate_image_state_dict(backbone, replicates).items())
    for k, v in sd.items():
        if k.startswith('neck.'):
            out[k] = v
        elif k.startswith('head.fc.'):
            out['cls_head.fc_cls.' + k[len('head.fc.'):]] = v
    meta = dict(arch=arch, replicates=replicates, source=str(src))
    return dict(meta=meta, state_dict=out)


def save_checkpoint(ckpt: dict, dst: str) -> None:
    """Write a converted checkpoint, creating the folder, and say what."""
    import os
    import os.path as osp
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(ckpt, dst)
    meta = {k: v for k, v in ckpt['meta'].items() if k != 'source'}
    print(f'saved {len(ckpt["state_dict"])} tensors to {dst} ({meta})')
