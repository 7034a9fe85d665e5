"""Checkpoint formats of SparseFormer weights, and the one unwrapper.

Which files exist and how their keys map onto our models:

* the authors' library's flat ``*_converted.pth`` state dicts (the
  "reference layout": ``feat_extractor.*``, ``initial_roi``, ``layers.N.*``,
  ``norm``, ``proj``);
* the original training code's ``{'model', 'model_ema', ...}`` files with
  older key names (``LEGACY_RENAMES``);
* our own mmpretrain (``backbone.`` / ``neck.`` / ``head.``) and mmaction2
  (``backbone.`` / ``neck.`` / ``cls_head.``) checkpoints.

Every reader of a loaded file takes its tensors through
:func:`unwrap_state_dict`. The arch a file's tensors show is
:func:`sparseformer_mm.archs.infer_arch`; inflating image weights into video
ones is the video backbone's (``models/backbones/inflation.py``). This
module imports no model.
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch
from torch import Tensor

from .archs import infer_arch
from .checkpoint_safety import load_weights_only

StateDict = Dict[str, Tensor]

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

# Where files keep their weights: a Runner's and most tools' 'state_dict',
# the original training code's 'model', a bare DDP module's 'module'.
WRAPPERS = ('state_dict', 'model', 'module')


def unwrap_state_dict(ckpt, src: str = '<checkpoint>',
                      wrappers: Tuple[str, ...] = WRAPPERS) -> StateDict:
    """The tensors of a loaded checkpoint file.

    Args:
        ckpt: what ``torch.load`` returned.
        src (str): the file, for messages.
        wrappers (tuple[str]): entries that may hold the weights, tried in
            order (the first dict holding tensors wins); else the top level.
            Defaults to ``WRAPPERS``; mmengine's ``load_checkpoint`` reads
            ``('state_dict',)``.

    Returns:
        dict: the tensors in file order, non-tensor entries dropped and a
        ``module.`` (DDP) prefix removed, as mmengine's loader does.

    Raises:
        ValueError: naming ``src`` and its keys when it holds no tensors.
    """
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src} is not a checkpoint of weights: expected a '
                         f'dict of tensors, got {type(ckpt).__name__}')
    for key in wrappers:
        inner = ckpt.get(key)
        if isinstance(inner, dict) and any(
                torch.is_tensor(v) for v in inner.values()):
            ckpt = inner
            break
    sd = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in ckpt.items() if torch.is_tensor(v))
    if not sd:
        raise ValueError(
            f'{src} is not a checkpoint of weights: it holds no tensors at '
            f'its top level or under {" / ".join(map(repr, wrappers))}; '
            f'its keys are {sorted(map(str, ckpt))[:10]}')
    return sd


def _rename(key: str, old: str, new: str) -> str:
    return re.sub(r'(^|\.)' + re.escape(old) + r'(?=\.|$)',
                  lambda m: m.group(1) + new, key)


def extract_state_dict(ckpt: dict, ema: bool = False,
                       src: str = '<checkpoint>') -> StateDict:
    """Pick the flat reference-layout state dict out of a loaded file.

    Accepts the library's flat ``*_converted.pth`` and the original training
    code's ``{'model', 'model_ema', ...}`` (older key names are renamed).
    """
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict) \
            and any(k.startswith('backbone.') for k in ckpt['state_dict']):
        raise ValueError(f'{src} is already an mmpretrain checkpoint '
                         '(keys start with "backbone."); load it directly.')
    if ema:
        if not isinstance(ckpt, dict) or 'model_ema' not in ckpt:
            keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else []
            raise ValueError(f'--ema given but {src} has no "model_ema" entry '
                             f'(top-level keys: {keys})')
        sd = unwrap_state_dict(ckpt['model_ema'], src,
                               wrappers=('state_dict_ema', ))
    else:
        sd = unwrap_state_dict(ckpt, src)
    out = OrderedDict()
    for key, value in sd.items():
        for old, new in LEGACY_RENAMES:
            key = _rename(key, old, new)
        out[key] = value
    return out


def to_mmpretrain(sd: StateDict) -> StateDict:
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


STUDENT = 'student.backbone.'


def prefixed_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """Weights keyed ``backbone.`` / ``neck.`` / ``head.`` (or ``cls_head.``)
    from a checkpoint of ours (mmpretrain or mmaction2, or a bootstrapping
    run's: its student) or from released / original-training SparseFormer
    weights."""
    sd = unwrap_state_dict(ckpt, src)
    if any(k.startswith('backbone.') for k in sd):
        return sd
    if any(k.startswith(STUDENT) for k in sd):
        # a bootstrapping run (BootstrapDistiller): its student
        return OrderedDict((k[len('student.'):], v)
                           for k, v in sd.items() if k.startswith('student.'))
    return to_mmpretrain(extract_state_dict(ckpt, src=src))


def backbone_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """Backbone-level weights (no prefix) from any of the formats above."""
    return {k[len('backbone.'):]: v
            for k, v in prefixed_state_dict(ckpt, src).items()
            if k.startswith('backbone.')}


def load_backbone_weights(path: str) -> StateDict:
    """:func:`backbone_state_dict` of a file, loaded weights-only."""
    return backbone_state_dict(load_weights_only(path), src=path)


def convert_released(src: str, ema: bool = False) -> Tuple[dict, dict]:
    """Released / original-training weights as an mmpretrain checkpoint.

    Returns:
        tuple[dict, dict]: ``({'meta', 'state_dict'}, arch)``; the state
        dict uses ``ImageClassifier`` keys. Check it against a built model
        (``sparseformer_mm.models.convert_sparseformer`` does).
    """
    sd = extract_state_dict(load_weights_only(src), ema=ema, src=src)
    arch = infer_arch(sd, src)
    state_dict = to_mmpretrain(sd)
    num_classes = state_dict['head.fc.weight'].shape[0] \
        if 'head.fc.weight' in state_dict else 1000
    # CLIP towers end in a bias-free projection to an embedding.
    head_bias = 'head.fc.bias' in state_dict or 'head.fc.weight' not in \
        state_dict
    meta = dict(arch=arch, num_classes=num_classes, head_bias=head_bias,
                source=str(src), ema=ema)
    return dict(meta=meta, state_dict=state_dict), arch


def save_checkpoint(ckpt: dict, dst: str) -> None:
    """Write a converted checkpoint, creating the folder, and say what."""
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(ckpt, dst)
    meta = {k: v for k, v in ckpt['meta'].items() if k != 'source'}
    print(f'saved {len(ckpt["state_dict"])} tensors to {dst} ({meta})')
