"""Checkpoint formats of SparseFormer weights, in one place.

Which files exist and how their keys map onto our models:

* the authors' library's flat ``*_converted.pth`` state dicts (the
  "reference layout": ``feat_extractor.*``, ``initial_roi``, ``layers.N.*``,
  ``norm``, ``proj``);
* the original training code's ``{'model', 'model_ema', ...}`` files with
  older key names (``LEGACY_RENAMES``);
* our own mmpretrain (``backbone.`` / ``neck.`` / ``head.``) and mmaction2
  (``backbone.`` / ``neck.`` / ``cls_head.``) checkpoints.

Also here: reading an ``arch`` off the tensors, inflating image weights into
video weights, weights-only loading, and the messages that say what to set
when weights do not fit. This module is a leaf: the models import it; it
imports no model.
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from .archs import CORTEX_OPS, FOCUS_OPS, btsp_arch
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

STEM_WEIGHT = 'feat_extractor.conv1.weight'


def _rename(key: str, old: str, new: str) -> str:
    return re.sub(r'(^|\.)' + re.escape(old) + r'(?=\.|$)',
                  lambda m: m.group(1) + new, key)


def extract_state_dict(ckpt: dict, ema: bool = False,
                       src: str = '<checkpoint>') -> StateDict:
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


def _unit_ops(keys: set) -> Tuple[str, ...]:
    """The ops of a unit, read off its parameter names (in v1 order)."""
    present = dict(attn='norm1.weight', roi_adj='roi_adjust_module.0.weight',
                   sampling='roi_offset_bias', mlp='norm2.weight',
                   pe_inject='pe_transition.0.weight')
    return tuple(op for op, key in present.items() if key in keys)


def infer_arch(sd: StateDict, src: str = '<checkpoint>') -> dict:
    """Read ``arch`` off backbone-level tensors (no ``backbone.`` prefix).

    A v1-shaped model (a focusing unit, a transition, a sampling cortex
    block, plain cortex blocks) comes back in the short form
    ``dict(num_tokens, focus_dims, cortex_dims, cortex_depth, num_points)``;
    any other layer stack as ``dict(num_tokens, num_points, stages=[...])``
    with one stage per unit. What the tensors cannot tell (shared-weight
    repeats without a stage embedding, heads) takes the v1 defaults.
    """
    needed = ('initial_roi.weight', 'initial_embedding.weight')
    missing = [k for k in needed if k not in sd]
    if missing:
        raise ValueError(
            f'{src} is not a SparseFormer checkpoint: missing {missing}. '
            f'Its first keys are {sorted(sd)[:8]}.')
    num_tokens, ndim2 = sd['initial_roi.weight'].shape
    ndim = ndim2 // 2
    layers: Dict[int, set] = {}
    for key in sd:
        m = re.match(r'layers\.(\d+)\.(.+)', key)
        if m:
            layers.setdefault(int(m.group(1)), set()).add(m.group(2))
    stages, num_points = [], None
    width = int(sd['initial_embedding.weight'].shape[1])
    for i in sorted(layers):
        keys = layers[i]
        ops = _unit_ops(keys)
        if not ops:  # a width transition: Linear (+ LayerNorm)
            width = int(sd[f'layers.{i}.0.weight'].shape[0])
            continue
        stage = dict(width=width, ops=ops)
        if 'roi_offset_bias' in keys:
            num_points = sd[f'layers.{i}.roi_offset_bias'].numel() // ndim
        if 'stage_embedding.weight' in keys:
            stage['repeats'] = int(sd[f'layers.{i}.stage_embedding.weight']
                                   .shape[0])
            stage['stage_embed'] = True
        stages.append(stage)
    if num_points is None:
        raise ValueError(f'{src} has no sampling unit (no '
                         'layers.N.roi_offset_bias): not a SparseFormer '
                         'checkpoint.')
    if 'cls_embedding.weight' in sd and len(stages) >= 3 \
            and 'pe_inject' in stages[0]['ops']:
        # Bootstrapped: QuickGELU is not in the weights; CLIP's projection
        # has no bias (when the file has a projection at all).
        clip = 'proj.weight' in sd and 'proj.bias' not in sd
        return btsp_arch(int(num_tokens), stages[0]['width'],
                         stages[-1]['width'], len(stages) - 2, clip=clip)
    v1 = (len(stages) >= 2 and stages[0]['ops'] == FOCUS_OPS
          and stages[1]['ops'] == FOCUS_OPS and len(stages[0]) == 2
          and all(s['ops'] == CORTEX_OPS and len(s) == 2 for s in stages[2:])
          and len({s['width'] for s in stages[1:]}) == 1
          and int(sd['initial_embedding.weight'].shape[0]) == num_tokens)
    if v1:
        return dict(num_tokens=int(num_tokens),
                    focus_dims=stages[0]['width'],
                    cortex_dims=stages[1]['width'],
                    cortex_depth=len(stages) - 1, num_points=int(num_points))
    if stages[0]['ops'] == FOCUS_OPS and 'repeats' not in stages[0]:
        stages[0]['repeats'] = 4
    return dict(num_tokens=int(num_tokens), num_points=int(num_points),
                stages=stages)


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


def prefixed_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """Weights keyed ``backbone.`` / ``neck.`` / ``head.`` (or ``cls_head.``)
    from a checkpoint of ours (mmpretrain or mmaction2) or from released /
    original-training SparseFormer weights."""
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if isinstance(sd, dict) and any(k.startswith('backbone.') for k in sd):
        return sd
    return to_mmpretrain(extract_state_dict(ckpt, src=src))


def backbone_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """Backbone-level weights (no prefix) from any of the formats above."""
    return {k[len('backbone.'):]: v
            for k, v in prefixed_state_dict(ckpt, src).items()
            if k.startswith('backbone.')}


def load_backbone_weights(path: str) -> StateDict:
    """:func:`backbone_state_dict` of a file, loaded weights-only."""
    return backbone_state_dict(load_weights_only(path), src=path)


# ---------------------------------------------------------------------------
# Image -> video inflation
# ---------------------------------------------------------------------------
def tube_rois(boxes: Tensor, replicates: int) -> Tensor:
    """Inflate ``(N, 4)`` boxes into ``(N*R, 6)`` tubes, replica-major.

    Replica ``k`` keeps every box and gets the temporal segment
    ``[k/R, (k+1)/R]``; corners are ``(x1, y1, t1, x2, y2, t2)``.
    """
    N = boxes.shape[0]
    tubes = []
    for k in range(replicates):
        t1 = boxes.new_full((N, 1), k / replicates)
        t2 = boxes.new_full((N, 1), (k + 1) / replicates)
        tubes.append(torch.cat([boxes[:, :2], t1, boxes[:, 2:], t2], dim=1))
    return torch.cat(tubes, dim=0)


def _xy_to_xyt(t: Tensor, num_groups: int) -> Tensor:
    """Insert a zero ``t`` after every ``(x, y)`` pair along dim 0."""
    pairs = t.reshape(num_groups, 2, *t.shape[1:])
    zeros = pairs.new_zeros((num_groups, 1) + tuple(t.shape[1:]))
    return torch.cat([pairs, zeros], dim=1).reshape(num_groups * 3,
                                                    *t.shape[1:])


def is_image_state_dict(sd: StateDict, prefix: str = '') -> bool:
    """Whether backbone weights (under ``prefix``) are an image model's."""
    conv = sd.get(prefix + STEM_WEIGHT)
    return conv is not None and conv.dim() == 4


def inflate_image_state_dict(state_dict: StateDict,
                             replicates: int) -> StateDict:
    """Image SparseFormer backbone weights -> VideoSparseFormer weights.

    Keys are backbone-level (no ``backbone.`` prefix). Following the
    reference: the stem conv gains a time axis of 1; per-token embeddings
    are repeated R times (replica-major; a shared embedding stays one row);
    replica k of each RoI gets the temporal segment ``[k/R, (k+1)/R]``;
    offset weights and biases map every point ``(x, y)`` to ``(x, y, 0)``;
    RoI-adjust output rows ``(x, y, w, h)`` become ``(x, y, 0, w, h, 0)``;
    the tubes' temporal position encoding (``pe_time``) starts at zero.
    Everything else is copied.
    """
    num_tokens = state_dict['initial_roi.weight'].shape[0]
    out = OrderedDict()
    for key, value in state_dict.items():
        if key == STEM_WEIGHT:
            value = value.unsqueeze(2)
        elif key == 'initial_embedding.weight':
            if value.shape[0] == num_tokens:
                value = value.repeat(replicates, 1)
        elif key == 'initial_roi.weight':
            value = tube_rois(value, replicates)
        elif key.endswith(('roi_offset_module.1.weight', 'roi_offset_bias')):
            value = _xy_to_xyt(value, value.shape[0] // 2)
        elif re.search(r'roi_adjust_module\.\d+\.weight$', key) \
                and value.dim() == 2 and value.shape[0] == 4:
            value = _xy_to_xyt(value, 2)
        out[key] = value
        m = re.match(r'(.*)pe_transition\.1\.weight$', key)
        if m:  # the tubes' temporal encoding starts at zero
            d = value.shape[0]
            out[m.group(1) + 'pe_time.0.weight'] = value.new_ones(d)
            out[m.group(1) + 'pe_time.0.bias'] = value.new_zeros(d)
            out[m.group(1) + 'pe_time.1.weight'] = value.new_zeros(d, d)
            out[m.group(1) + 'pe_time.1.bias'] = value.new_zeros(d)
    return out


def inflate_checkpoint(src: str, replicates: int) -> dict:
    """An image checkpoint (ours, or released / original weights) as an
    mmaction2 ``Recognizer3D`` checkpoint for VideoSparseFormer.

    The backbone is inflated (:func:`inflate_image_state_dict`); the neck's
    LayerNorm is kept and the image head becomes ``cls_head.fc_cls``.
    """
    sd = prefixed_state_dict(load_weights_only(src), src)
    backbone = {k[len('backbone.'):]: v for k, v in sd.items()
                if k.startswith('backbone.')}
    if not is_image_state_dict(backbone):
        raise ValueError(f'{src} is not an image SparseFormer checkpoint '
                         '(no 2-D backbone.feat_extractor.conv1.weight)')
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


# ---------------------------------------------------------------------------
# What to set when weights do not fit
# ---------------------------------------------------------------------------
def video_mismatch_message(own: StateDict, cand: StateDict, sd: StateDict,
                           path: str, *, arch: dict, replicates: int,
                           is_image: bool, name_of: Callable[[dict], str],
                           normalize: Callable[[dict], dict]) -> Optional[str]:
    """``None`` if ``cand`` (the file's weights ``sd`` as video weights)
    fits a VideoSparseFormer with state dict ``own``, else a message
    saying what to change.

    Args:
        arch (dict): the model's arch.
        name_of (callable): names an arch (``'tiny'`` for a zoo entry).
        normalize (callable): an arch in its full form, to compare two.
    """
    missing, unexpected = set(own) - set(cand), set(cand) - set(own)
    bad = {k for k in cand if k in own and cand[k].shape != own[k].shape}
    if not (missing or unexpected or bad):
        return None
    ours = name_of(arch)
    head = (f'{path} does not fit VideoSparseFormer(arch={ours}, '
            f'replicates={replicates}): ')
    keys = (f'missing {sorted(missing)[:10]}, unexpected '
            f'{sorted(unexpected)[:10]}, wrong shapes {sorted(bad)[:10]}')
    try:
        theirs = infer_arch(sd, path)
    except ValueError as e:
        return head + f'{keys}. {e}'
    width = theirs.get('cortex_dims') or theirs['stages'][-1]['width']
    width = (f" (and the neck's and cls_head's in_channels={width})")
    if is_image:
        if name_of(theirs) == ours:
            return head + keys + '.'
        return (head + f'it is an image SparseFormer of arch '
                f'{name_of(theirs)}. Set model.backbone.arch='
                f'{name_of(theirs)}{width}, or point '
                'model.backbone.pretrained at a checkpoint of arch '
                f'{ours}.')
    total = theirs['num_tokens']
    n = arch['num_tokens']
    same = (dict(normalize(theirs), num_tokens=0)
            == dict(normalize(arch), num_tokens=0))
    if same and total == n * replicates:
        return head + keys + '.'
    if same and total % n == 0:
        return (head + f'it is a VideoSparseFormer with {total} = {n} x '
                f'{total // n} tokens (replicates={total // n}). Set '
                f'model.backbone.replicates={total // n}, or start from '
                'the image checkpoint (pretrained2d=True) to inflate it '
                f'to replicates={replicates}.')
    if same:
        return (head + f'it is a VideoSparseFormer with {total} tokens, '
                f'not a multiple of the {n} tokens of arch {ours}: its '
                'num_tokens differs. Set model.backbone.arch to its '
                'image arch, with replicates = its tokens / num_tokens.')
    theirs_desc = {k: v for k, v in theirs.items() if k != 'num_tokens'}
    return (head + f'it is a VideoSparseFormer with {total} tokens and '
            f'{theirs_desc}. Set model.backbone.arch to that arch (with '
            f'num_tokens x replicates = {total}){width}.')
