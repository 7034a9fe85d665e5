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
import warnings
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .archs import (ARCH_ZOO, CORTEX_OPS, FOCUS_OPS, STAGE_DEFAULTS,
                    btsp_arch)
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
        arch = btsp_arch(int(num_tokens), stages[0]['width'],
                         stages[-1]['width'], len(stages) - 2, clip=clip)
        arch.update(num_points=int(num_points),
                    feat_channels=int(sd[STEM_WEIGHT].shape[0]))
        return arch
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


STUDENT = 'student.backbone.'


def prefixed_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """Weights keyed ``backbone.`` / ``neck.`` / ``head.`` (or ``cls_head.``)
    from a checkpoint of ours (mmpretrain or mmaction2, or a bootstrapping
    run's: its student) or from released / original-training SparseFormer
    weights."""
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if isinstance(sd, dict) and any(k.startswith('backbone.') for k in sd):
        return sd
    if isinstance(sd, dict) and any(k.startswith(STUDENT) for k in sd):
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


def resample_token_grid(state_dict: StateDict, grid: Tuple[int, int],
                        unit: float = 0.5) -> StateDict:
    """Image backbone weights with an ``r x r`` token grid -> a
    ``cols x rows`` grid (``grid``), for a model whose frames are not square.

    Token ``a*rows + b`` (column ``a``, row ``b``) takes the embedding of the
    source token nearest in grid position, and that token's learned RoI:
    its centre's offset from its grid cell and its size, scaled by how the
    cell size changes along each axis, around the new cell's centre (cells
    as :func:`~sparseformer_mm.models.layers.grid_init_rois` lays them out
    with box side ``unit``). A grid-initialised checkpoint thus becomes the
    grid initialisation of the new shape. A shared embedding (one row) is
    kept. Keys are backbone-level; other keys are copied.
    """
    cols, rows = (int(v) for v in grid)
    roi = state_dict['initial_roi.weight']
    emb = state_dict['initial_embedding.weight']
    n = roi.shape[0]
    r = int(round(n ** 0.5))
    if r * r != n or r < 2 or roi.shape[1] != 4:
        raise ValueError(
            f'only image weights with a square token grid can be resampled '
            f'to token_grid={tuple(grid)}; these have {n} tokens with '
            f'{roi.shape[1]}-number RoIs.')

    def cells(count, side):  # (index) -> (centre, cell side) along an axis
        lo = torch.arange(count, dtype=torch.float64) / (count - 1) * (1 - side)
        return lo + side / 2, side

    # the source cells, and the target's (width unit * rows / cols)
    src_c, src_u = cells(r, unit)
    dst_x, dst_ux = cells(cols, unit * rows / cols)
    dst_y, dst_uy = cells(rows, unit)
    scale = torch.tensor([dst_ux / src_u, dst_uy / src_u], dtype=torch.float64)
    # the nearest source column / row of each target one
    a = [min(r - 1, int(i * (r - 1) / (cols - 1) + 0.5)) for i in range(cols)]
    b = [min(r - 1, int(j * (r - 1) / (rows - 1) + 0.5)) for j in range(rows)]
    box = roi.double()
    centre, size = (box[:, :2] + box[:, 2:]) / 2, box[:, 2:] - box[:, :2]
    source, new_roi = [], []
    for i in range(cols):
        for j in range(rows):
            k = a[i] * r + b[j]
            offset = centre[k] - torch.stack([src_c[a[i]], src_c[b[j]]])
            c = torch.stack([dst_x[i], dst_y[j]]) + offset * scale
            half = size[k] * scale / 2
            new_roi.append(torch.cat([c - half, c + half]))
            source.append(k)
    out = OrderedDict(state_dict)
    out['initial_roi.weight'] = torch.stack(new_roi).to(roi.dtype)
    if emb.shape[0] == n:
        out['initial_embedding.weight'] = emb[source]
    return out


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
# ViT checkpoints -> a bootstrapped SparseFormer's initial weights
# ---------------------------------------------------------------------------
# A bootstrapped SparseFormer (CVPR 2024) inherits a pre-trained ViT's
# blocks from depth // 3 on, its final norm and its classifier (CLIP: its
# projection), and seeds its class token from the ViT's. The patch and
# position embeddings, CLIP's pre-norm and the first blocks are left
# behind. Three families of ViT files are read; all store attention as one
# (3 d, d) q, k, v stack, as our ``attn.qkv`` does, so tensors carry over
# unchanged (CLIP's ``proj`` is stored (in, out) and is transposed).

# An inherited unit's parameters (timm's names).
VIT_UNIT_KEYS = (
    'norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
    'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias',
    'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')


def _unit_names(*renames: Tuple[str, str]) -> Dict[str, str]:
    """Our unit key -> a source block's key (leading parts renamed)."""
    out = {}
    for key in VIT_UNIT_KEYS:
        theirs = key
        for old, new in renames:
            if key == old or key.startswith(old + '.'):
                theirs = new + key[len(old):]
                break
        out[key] = theirs
    return out


class ViTHead(NamedTuple):
    """A classifier or projection: its keys, and whether the weight is
    stored ``(in, out)`` (CLIP's ``proj``) rather than ``(out, in)``."""
    weight: str
    bias: Optional[str]
    transposed: bool


class ViTLayout(NamedTuple):
    """Where one family of ViT checkpoints keeps what is inherited. Keys
    are the tower's (after a ``visual.`` prefix, if any); a prefix ending
    in ``.`` names a module, one without names a tensor."""
    name: str                  # recorded in meta
    title: str
    block: str                 # block i's prefix ('{}' for i)
    unit: Dict[str, str]       # our unit key -> the block's key
    cls_token: str
    norm: str                  # the final LayerNorm
    pre_norm: str              # a LayerNorm before the blocks (CLIP)
    heads: Tuple[ViTHead, ...]  # the head, in any of these forms
    head_prefix: str           # everything of the head
    dropped: Tuple[str, ...]   # not carried over
    always_clip: bool = False  # CLIP whether or not a pre-norm is stored


VIT_LAYOUTS = OrderedDict(
    timm=ViTLayout(
        'timm', 'timm VisionTransformer', 'blocks.{}.', _unit_names(),
        'cls_token', 'norm.', 'norm_pre.',
        (ViTHead('head.weight', 'head.bias', False), ), 'head.',
        ('patch_embed.', 'pos_embed', 'norm_pre.')),
    openai_clip=ViTLayout(
        'openai_clip', 'OpenAI CLIP / open_clip visual tower',
        'transformer.resblocks.{}.',
        _unit_names(('norm1', 'ln_1'),
                    ('attn.qkv.weight', 'attn.in_proj_weight'),
                    ('attn.qkv.bias', 'attn.in_proj_bias'),
                    ('attn.proj', 'attn.out_proj'), ('norm2', 'ln_2'),
                    ('mlp.fc1', 'mlp.c_fc'), ('mlp.fc2', 'mlp.c_proj')),
        'class_embedding', 'ln_post.', 'ln_pre.',
        (ViTHead('proj', None, True), ), 'proj',
        ('conv1.', 'positional_embedding', 'ln_pre.'), always_clip=True),
    mmpretrain=ViTLayout(
        'mmpretrain', 'mmpretrain VisionTransformer', 'backbone.layers.{}.',
        _unit_names(('norm1', 'ln1'), ('norm2', 'ln2'),
                    ('mlp.fc1', 'ffn.layers.0.0'),
                    ('mlp.fc2', 'ffn.layers.1')),
        'backbone.cls_token', 'backbone.ln1.', 'backbone.pre_norm.',
        (ViTHead('head.layers.head.weight', 'head.layers.head.bias', False),
         ViTHead('head.fc.weight', 'head.fc.bias', False)), 'head.',
        ('backbone.patch_embed.', 'backbone.pos_embed',
         'backbone.pre_norm.')),
)
CLIP_PREFIX = 'visual.'

# What unknown keys usually are, to say why they cannot be carried over.
_VIT_KEY_HINTS = (
    (r'(^|\.)(ls_?[12]|gamma_?[12])(\.|$)', 'LayerScale'),
    (r'(^|\.)[qk]_norm\.', 'qk-norm'),
    (r'(^|\.)(ln_attn|attn\.norm|mlp\.norm|mlp\.ln)\.',
     'extra norms inside a block'),
    (r'(^|\.)(fc_norm|backbone\.ln2)\.',
     'average pooling of patch tokens instead of the class token'),
    (r'(^|\.)attn_pool', 'attention pooling instead of the class token'),
    (r'(^|\.)reg_token', 'register tokens'),
    (r'(^|\.)pre_logits\.', 'a hidden layer in the head (pass '
     '--num-classes to start a new head instead)'),
)

VIT_EXPECTED = (
    'timm ViT (blocks.N.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2, '
    'cls_token, norm, head); OpenAI CLIP / open_clip visual tower '
    '(visual.transformer.resblocks.N.ln_1/attn.in_proj_weight/'
    'attn.out_proj/ln_2/mlp.c_fc/mlp.c_proj, visual.class_embedding, '
    "visual.ln_post, visual.proj; the 'visual.' prefix is optional); "
    'mmpretrain VisionTransformer (backbone.layers.N.ln1/attn.qkv/'
    'attn.proj/ln2/ffn.layers.0.0/ffn.layers.1, backbone.cls_token, '
    'backbone.ln1, head.layers.head or head.fc)')


def _under(key: str, prefix: str) -> bool:
    if prefix.endswith('.'):
        return key.startswith(prefix)
    return key == prefix or key.startswith(prefix + '.')


def load_vit_file(path: str) -> dict:
    """A ViT checkpoint read without running code: ``.safetensors`` (what
    timm and open_clip download today), or a torch file weights-only."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist')
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise RuntimeError(f'reading {path} needs the safetensors '
                               'package: pip install safetensors') from e
        return load_file(path)
    try:
        with warnings.catch_warnings():
            # torch says it dispatches to torch.jit.load; it refuses below.
            warnings.filterwarnings('ignore', '.*looks like a TorchScript')
            return load_weights_only(path)
    except RuntimeError as e:
        if 'TorchScript' not in str(e):
            raise
        raise RuntimeError(
            f'{path} is a TorchScript archive (as OpenAI\'s released CLIP '
            '.pt files are), which holds code. In a session you trust, '
            'save its weights: torch.save(torch.jit.load(path, '
            "map_location='cpu').state_dict(), 'clip_weights.pth'), and "
            'convert that file.') from e


def vit_state_dict(ckpt: dict, src: str = '<checkpoint>') -> StateDict:
    """The tensors of a loaded ViT file, unwrapped from ``state_dict`` /
    ``model`` / ``module`` and without a ``module.`` (DDP) prefix."""
    if not isinstance(ckpt, dict):
        raise ValueError(f'{src}: expected a dict of tensors, got '
                         f'{type(ckpt).__name__}')
    for key in ('state_dict', 'model', 'module'):
        inner = ckpt.get(key)
        if isinstance(inner, dict) and any(
                torch.is_tensor(v) for v in inner.values()):
            ckpt = inner
            break
    sd = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in ckpt.items() if torch.is_tensor(v))
    if not sd:
        raise ValueError(f'{src} holds no tensors at its top level or under '
                         f'"state_dict" / "model"; its keys are '
                         f'{sorted(ckpt)[:10]}')
    return sd


class ViTSource(NamedTuple):
    """A ViT checkpoint as read by :func:`read_vit`.

    Attributes:
        layout (ViTLayout): its family.
        sd (dict): the tower's tensors (without the ``visual.`` prefix).
        prefix (str): ``'visual.'`` for a whole CLIP model, else ``''``.
        ignored (list): keys outside the tower (CLIP's text tower).
        depth, width, mlp_hidden (int): blocks, token width, MLP width.
        qkv_bias (bool): whether the attention has a qkv bias.
        clip (bool): a CLIP tower (a LayerNorm before the blocks).
        head (ViTHead, optional): the head found, if carried over.
        head_out (int): its output width (classes, or CLIP's embedding).
        head_bias (bool): whether its bias is carried over (a CLIP tower's
            all-zero bias, which timm's OpenAI conversion adds, is not).
    """
    layout: ViTLayout
    sd: StateDict
    prefix: str
    ignored: List[str]
    depth: int
    width: int
    mlp_hidden: int
    qkv_bias: bool
    clip: bool
    head: Optional[ViTHead]
    head_out: int
    head_bias: bool

    def describe(self) -> str:
        head = 'no head'
        if self.head is not None:
            kind = 'projection' if not self.head_bias else 'classifier'
            head = (f'{kind} to {self.head_out} '
                    f'({"with" if self.head_bias else "no"} bias)')
        where = f" under '{self.prefix}'" if self.prefix else ''
        clip = f', CLIP-style ({self.layout.pre_norm.rstrip(".")})' \
            if self.clip else ''
        return (f'{self.layout.title}{where}{clip}: {self.depth} blocks, '
                f'width {self.width}, MLP {self.mlp_hidden}, {head}')


def detect_vit_layout(sd: StateDict, src: str = '<checkpoint>'
                      ) -> Tuple[ViTLayout, StateDict, str, List[str]]:
    """``(layout, tower tensors, prefix, ignored keys)`` of a ViT state
    dict; a ``ValueError`` names what was found and what is expected."""
    if any(k.endswith('initial_roi.weight') for k in sd):
        raise ValueError(f'{src} is a SparseFormer checkpoint, not a ViT: '
                         'convert released SparseFormer weights with '
                         'tools/model_converters/sparseformer_to_mm.py.')
    prefix, ignored, tower = '', [], sd
    if any(k.startswith(CLIP_PREFIX) for k in sd):
        prefix = CLIP_PREFIX
        ignored = [k for k in sd if not k.startswith(prefix)]
        tower = OrderedDict((k[len(prefix):], v) for k, v in sd.items()
                            if k.startswith(prefix))
    for layout in VIT_LAYOUTS.values():
        block0 = layout.block.format(0)
        if all(block0 + layout.unit[k] in tower
               for k in ('norm1.weight', 'attn.qkv.weight')):
            return layout, tower, prefix, ignored
    keys = list(tower)
    raise ValueError(
        f'{src} is not a ViT checkpoint in a layout this converter reads. '
        f'It holds {len(keys)} tensors'
        f'{f" under {prefix!r}" if prefix else ""}, e.g. {keys[:8]}. '
        f'Expected one of: {VIT_EXPECTED}.')


def _shape(t: Tensor) -> tuple:
    return tuple(t.shape)


def read_vit(sd: StateDict, src: str = '<checkpoint>',
             carry_head: bool = True) -> ViTSource:
    """Detect the layout of a ViT state dict and check that every tensor
    is one a bootstrapped SparseFormer can carry over (or one it leaves
    behind: stem, position embedding, pre-norm, and the head when
    ``carry_head`` is False).

    Raises:
        ValueError: naming the file, the keys, and why.
    """
    layout, tower, prefix, ignored = detect_vit_layout(sd, src)
    title = f'{src} ({layout.title})'
    pat = re.compile(re.escape(layout.block).replace(r'\{\}', r'(\d+)'))
    blocks: Dict[int, List[str]] = {}
    for key in tower:
        m = pat.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), []).append(key[m.end():])
    depth = len(blocks)
    if sorted(blocks) != list(range(depth)):
        raise ValueError(f'{title}: blocks {sorted(blocks)} are not '
                         f'numbered 0..{depth - 1}')
    known = set()
    unit = layout.unit
    block0 = layout.block.format(0)
    width = int(tower[block0 + unit['norm1.weight']].shape[0])
    fc1 = tower.get(block0 + unit['mlp.fc1.weight'])  # checked below
    hidden = -1 if fc1 is None else int(fc1.shape[0])
    shapes = {'attn.qkv.weight': (3 * width, width),
              'attn.qkv.bias': (3 * width, ),
              'attn.proj.weight': (width, width),
              'mlp.fc1.weight': (hidden, width), 'mlp.fc1.bias': (hidden, ),
              'mlp.fc2.weight': (width, hidden)}
    qkv_bias = block0 + unit['attn.qkv.bias'] in tower
    for i in range(depth):
        block = layout.block.format(i)
        for ours, theirs in unit.items():
            key = block + theirs
            if key not in tower:
                if ours == 'attn.qkv.bias' and not qkv_bias:
                    continue  # a bias-free qkv: zeros compute the same
                raise ValueError(f'{title}: missing {prefix + key} (block '
                                 f'{i} has {sorted(blocks[i])})')
            want = shapes.get(ours, (width, ))
            if _shape(tower[key]) != want:
                raise ValueError(f'{title}: {prefix + key} has shape '
                                 f'{_shape(tower[key])}, expected {want} '
                                 f'(width {width}, MLP {hidden})')
            known.add(key)
    head, head_out, head_bias = None, 0, False
    clip = layout.always_clip or any(_under(k, layout.pre_norm)
                                     for k in tower)
    if carry_head:
        head = next((h for h in layout.heads if h.weight in tower), None)
    if head is not None:
        weight = tower[head.weight]
        d_in, head_out = (-1, 0) if weight.dim() != 2 else (
            tuple(weight.shape)[::1 if head.transposed else -1])
        if d_in != width:
            raise ValueError(f'{title}: {prefix + head.weight} has shape '
                             f'{_shape(weight)}; expected a projection from '
                             f'width {width}')
        known.add(head.weight)
        if head.bias is not None and head.bias in tower:
            known.add(head.bias)
            # timm's conversion of OpenAI CLIP adds a zero bias to proj.
            head_bias = bool(tower[head.bias].abs().sum()) or not clip
    unknown = []
    for key in tower:
        if key in known or pat.match(key):
            continue
        if key == layout.cls_token or _under(key, layout.norm) \
                or any(_under(key, p) for p in layout.dropped):
            continue
        if not carry_head and _under(key, layout.head_prefix):
            continue
        unknown.append(key)
    unknown += [k for i in blocks for k in
                (layout.block.format(i) + rest for rest in blocks[i])
                if k not in known]
    if unknown:
        hints = sorted({why for key in unknown for p, why in _VIT_KEY_HINTS
                        if re.search(p, key)})
        raise ValueError(
            f'{title}: tensors a bootstrapped SparseFormer cannot carry '
            f'over: {[prefix + k for k in unknown[:10]]}'
            f'{" ..." if len(unknown) > 10 else ""}'
            f'{" (" + "; ".join(hints) + ")" if hints else ""}. An '
            'inherited block is exactly pre-LN attention (qkv, proj) and a '
            'two-layer MLP, and the model reads the class token through '
            'the final norm.')
    for key, what in ((layout.cls_token, 'class token'),
                      (layout.norm + 'weight', 'final norm'),
                      (layout.norm + 'bias', 'final norm bias')):
        if key not in tower:
            raise ValueError(
                f'{title}: no {what} ({prefix + key}); a bootstrapped '
                'SparseFormer inherits the class token and the final norm '
                '(a CLIP text tower has no class token).')
    if tower[layout.cls_token].numel() != width:
        raise ValueError(f'{title}: {prefix + layout.cls_token} has shape '
                         f'{_shape(tower[layout.cls_token])}, expected '
                         f'{width} values')
    return ViTSource(layout, tower, prefix, ignored, depth, width, hidden,
                     qkv_bias, clip, head, int(head_out), head_bias)


def vit_defaults(src: ViTSource) -> Dict[str, object]:
    """What a ViT file does not store, as the models of its kind set it:
    LayerNorm ``eps``, ``mlp_act``, ``num_heads`` (``None``: the width is
    not a multiple of 64, so no default), and ``notes`` saying why."""
    if src.clip:
        eps, act = 1e-5, 'quick_gelu'
        why = ('OpenAI CLIP runs QuickGELU and LayerNorm eps 1e-5 (open_clip '
               "LAION towers and timm's non-quickgelu CLIP models run GELU: "
               'then pass --mlp-act gelu)')
    else:
        eps, act = 1e-6, 'gelu'
        why = f'{src.layout.title} defaults: GELU, LayerNorm eps 1e-6'
    heads = src.width // 64 if src.width % 64 == 0 else None
    return dict(eps=eps, mlp_act=act, num_heads=heads, notes=why)


def _inherited_stage(arch: dict, src: ViTSource, eps: Optional[float],
                     num_heads: int) -> dict:
    """``arch`` with its last stage computing what the source blocks do:
    the source's MLP width, heads and (unless ``eps`` is None) eps."""
    stages = [dict(st) for st in arch['stages']]
    st = stages[-1]
    if src.mlp_hidden % src.width:
        raise ValueError(
            f'the ViT\'s MLP width {src.mlp_hidden} is not a multiple of its '
            f'width {src.width}; a SparseFormer stage sets an integer '
            'mlp_ratio (a model change would be needed).')
    if src.mlp_hidden != src.width * st.get('mlp_ratio', 4):
        st['mlp_ratio'] = src.mlp_hidden // src.width
    if src.width % num_heads:
        raise ValueError(f'{num_heads} heads do not divide the ViT width '
                         f'{src.width}')
    if src.width // num_heads != st.get('head_dims'):
        st.pop('head_dims', None)
        st['num_heads'] = num_heads
    if eps is not None:
        st['eps'] = eps
    return dict(arch, stages=stages)


def bootstrap_arch(src: ViTSource, first: int, *, num_tokens: int = 48,
                   focus_dims: Optional[int] = None,
                   eps: Optional[float], mlp_act: str,
                   num_heads: int) -> dict:
    """The bootstrapped arch for a ViT: ``btsp_arch(num_tokens,
    focus_dims (width // 2), width, depth - first, clip=QuickGELU)`` whose
    inherited stage has the source's heads, MLP width and, unless ``eps``
    is None, eps."""
    focus = focus_dims or src.width // 2
    if focus % 64:
        raise ValueError(
            f'focus_dims={focus} is not a multiple of 64 (the focusing unit '
            'has 64-d heads); choose --focus-dims.')
    arch = btsp_arch(num_tokens, focus, src.width, src.depth - first,
                     clip=mlp_act == 'quick_gelu')
    arch['stages'][-1]['mlp_act'] = mlp_act
    return _inherited_stage(arch, src, eps, num_heads)


def fit_bootstrap_arch(name: str, src: ViTSource, first: int, *,
                       eps: Optional[float], mlp_act: str,
                       num_heads: int) -> dict:
    """Zoo arch ``name`` checked against a ViT: its class-token stage must
    have the ViT's width, ``depth - first`` blocks, MLP width, heads and
    activation. With ``eps`` given, the inherited stage takes it; ``None``
    keeps the arch's."""
    btsp = sorted(k for k, v in ARCH_ZOO.items() if 'stages' in v
                  and v['stages'][-1].get('cls_token'))
    if name not in btsp:
        raise ValueError(f"--arch {name!r} is not a bootstrapped arch; "
                         f'choose from {btsp} or leave --arch out.')
    arch = ARCH_ZOO[name]
    st = {**STAGE_DEFAULTS, **arch['stages'][-1]}
    depth = src.depth - first
    heads = st['num_heads'] or st['width'] // st['head_dims']
    checks = (
        ('width', st['width'], src.width, src.width),
        ('inherited blocks', st['depth'], depth,
         f'{src.depth} - {first} = {depth}'),
        ('MLP width', st['width'] * st['mlp_ratio'], src.mlp_hidden,
         src.mlp_hidden),
        ('heads', heads, num_heads, f'{num_heads} (--source-heads)'),
        ('MLP activation', st['mlp_act'], mlp_act, f'{mlp_act} (--mlp-act)'))
    problems = [f"{what} {theirs} (the ViT's: {desc})"
                for what, theirs, ours, desc in checks if theirs != ours]
    if problems:
        raise ValueError(f'arch {name!r} does not fit {src.describe()}: it '
                         f'has {"; ".join(problems)}. Leave --arch out to '
                         'build one from the ViT.')
    return _inherited_stage(arch, src, eps, num_heads)


def zoo_arch_name(arch: dict) -> Optional[str]:
    """The zoo name of an arch dict, if it is a zoo entry unchanged."""
    names = [k for k, v in ARCH_ZOO.items() if v == arch]
    return max(names, key=len) if names else None


def vit_to_bootstrap(src: ViTSource, first: int, first_layer: int
                     ) -> Tuple[StateDict, Dict[str, str]]:
    """What a bootstrapped SparseFormer inherits from a ViT.

    Args:
        src (ViTSource): the ViT (:func:`read_vit`).
        first (int): its first inherited block.
        first_layer (int): the index in ``backbone.layers`` of the first
            block of the class-token stage.

    Returns:
        tuple[dict, dict]: ``ImageClassifier`` keys -> tensors (blocks
        ``first..depth-1`` as ``backbone.layers.{first_layer + j}``, the
        class token as ``backbone.cls_embedding.weight``, the final norm
        as ``neck.norm``, the head as ``head.fc``), and each key -> the
        source key it came from. Tensors keep the source's dtype.
    """
    layout, sd = src.layout, src.sd
    out, taken = OrderedDict(), OrderedDict()

    def take(target: str, key: str, value: Optional[Tensor] = None,
             note: str = ''):
        value = sd[key] if value is None else value
        out[target] = value.detach().clone(
            memory_format=torch.contiguous_format)
        taken[target] = src.prefix + key + note

    for j, i in enumerate(range(first, src.depth)):
        block = layout.block.format(i)
        for ours, theirs in layout.unit.items():
            target = f'backbone.layers.{first_layer + j}.{ours}'
            if block + theirs in sd:
                take(target, block + theirs)
            else:  # a bias-free qkv (read_vit checked): a zero bias
                qkv = sd[block + layout.unit['attn.qkv.weight']]
                take(target, block + theirs, qkv.new_zeros(qkv.shape[0]),
                     ' (absent: zeros)')
    take('backbone.cls_embedding.weight', layout.cls_token,
         sd[layout.cls_token].reshape(1, src.width))
    for part in ('weight', 'bias'):
        take(f'neck.norm.{part}', layout.norm + part)
    if src.head is not None:
        weight = sd[src.head.weight]
        take('head.fc.weight', src.head.weight,
             weight.t() if src.head.transposed else weight,
             ' (transposed)' if src.head.transposed else '')
        if src.head_bias:
            take('head.fc.bias', src.head.bias)
    return out, taken
