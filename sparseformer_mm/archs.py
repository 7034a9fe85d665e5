"""SparseFormer architectures as data.

An arch is ``dict(num_tokens, num_points, stages=[...], **arch options)``;
a stage is ``dict(width, ops, **stage options)`` (``STAGE_DEFAULTS``). The
zoo's variants are built from two templates: the first paper's
(:func:`v1_stages`) and the bootstrapped one (:func:`btsp_stages`).

Also the answers about an arch, for the models and for checkpoints alike:
its full form (:func:`parse_arch`), its name (:func:`arch_name`) and the
arch a checkpoint's tensors show (:func:`infer_arch`).
"""
import copy
import re
from typing import Dict, List, Optional, Union

from torch import Tensor

FOCUS_OPS = ('attn', 'roi_adj', 'sampling', 'mlp')
CORTEX_OPS = ('attn', 'mlp')
BTSP_FOCUS_OPS = ('sampling', 'pe_inject', 'attn', 'mlp', 'roi_adj')
BTSP_BRIDGE_OPS = ('sampling', 'pe_inject')

SHORT_KEYS = ('num_tokens', 'focus_dims', 'cortex_dims', 'cortex_depth',
              'num_points')
# Per-stage options and their defaults; ``None`` takes the backbone's
# argument of the same name (num_heads, padding_mode, clip_sampling_grad).
STAGE_DEFAULTS = dict(
    repeats=1,               # shared-weight applications of each unit
    depth=1,                 # units with their own weights
    num_heads=None,          # attention heads, or
    head_dims=None,          # ... width / head_dims heads
    mlp_ratio=4,
    mlp_act='gelu',          # or 'quick_gelu' (CLIP)
    eps=1e-6,                # LayerNorm eps
    padding_mode=None,       # grid_sample padding: 'zeros' or 'border'
    clip_sampling_grad=None,
    roi_adj_head='linear',   # or 'mlp'
    mixing_inner_dims=None,  # adaptive-mixing generator width (d / 4)
    mixing_out_points=None,  # adaptive-mixing output points (num_points)
    mixing_bias=True,
    stage_embed=False,       # a learned embedding per repeat
    cls_token=False,         # insert a class token before this stage
    transition_norm=True,    # LayerNorm after a width transition into it
)
# Arch-level options: stem channels (None: the backbone's argument, else
# 96), one embedding shared by all tokens, the RoI initialisation ('grid':
# an r x r grid of half-image boxes; 'grid_rest_full': as many as fit on
# the grid, the rest on the whole image) and the grid's (columns, rows) for
# frames that are not square (None: r x r).
ARCH_DEFAULTS = dict(feat_channels=None, shared_embedding=False,
                     roi_init='grid', token_grid=None)
ROI_INITS = ('grid', 'grid_rest_full')


def v1_stages(focus_dims: int, cortex_dims: int, cortex_depth: int,
              focus_repeats: int = 4) -> List[dict]:
    """The first paper's layer stack as stages: a focusing unit applied
    ``focus_repeats`` times, a sampling cortex block, plain cortex blocks."""
    stages = [dict(width=focus_dims, ops=FOCUS_OPS, repeats=focus_repeats),
              dict(width=cortex_dims, ops=FOCUS_OPS)]
    if cortex_depth > 1:
        stages.append(dict(width=cortex_dims, ops=CORTEX_OPS,
                           depth=cortex_depth - 1))
    return stages


def v1_arch(num_tokens: int, focus_dims: int, cortex_dims: int,
            cortex_depth: int, num_points: int = 36) -> dict:
    """A first-paper SparseFormer in the full (stage-list) form."""
    return dict(num_tokens=num_tokens, num_points=num_points,
                stages=v1_stages(focus_dims, cortex_dims, cortex_depth))


# Options every stage of a bootstrapped SparseFormer (CVPR 2024) shares,
# after the authors' library (sparseformer/config.py, modeling.py).
BTSP_STAGE = dict(head_dims=64, eps=1e-5, roi_adj_head='mlp',
                  mixing_bias=False, mixing_inner_dims=128,
                  mixing_out_points=32, padding_mode='border',
                  clip_sampling_grad=False, transition_norm=False)


def btsp_stages(focus_dims: int, dims: int, depth: int,
                clip: bool = False) -> List[dict]:
    """A bootstrapped SparseFormer's stack: a focusing unit (x4, stage
    embeddings), a sampling unit at the ViT's width, then ``depth``
    inherited ViT blocks after a class token (QuickGELU for CLIP)."""
    return [
        dict(width=focus_dims, ops=BTSP_FOCUS_OPS, repeats=4,
             stage_embed=True, **BTSP_STAGE),
        dict(width=dims, ops=BTSP_BRIDGE_OPS, **BTSP_STAGE),
        dict(width=dims, ops=CORTEX_OPS, depth=depth, cls_token=True,
             mlp_act='quick_gelu' if clip else 'gelu', **BTSP_STAGE),
    ]


def btsp_arch(num_tokens: int, focus_dims: int, dims: int, depth: int,
              clip: bool = False) -> dict:
    """A bootstrapped SparseFormer in the full form: ``num_tokens`` latent
    tokens (one shared initial embedding) plus a class token, 16 points,
    a 64-channel stem."""
    return dict(num_tokens=num_tokens, num_points=16, feat_channels=64,
                shared_embedding=True, roi_init='grid_rest_full',
                stages=btsp_stages(focus_dims, dims, depth, clip))


ARCH_ZOO = {
    **dict.fromkeys(['t', 'tiny'], v1_arch(49, 256, 512, 8)),
    **dict.fromkeys(['s', 'small'], v1_arch(64, 320, 640, 8)),
    **dict.fromkeys(['b', 'base'], v1_arch(81, 384, 768, 10)),
    # Bootstrapped from a ViT-B/16 or ViT-L/14-16: 48 (63) latent tokens.
    'btsp-augreg-base': btsp_arch(48, 384, 768, 8),
    'btsp-augreg-large': btsp_arch(48, 512, 1024, 16),
    'btsp-clip-base': btsp_arch(48, 384, 768, 8, clip=True),
    'btsp-clip-large': btsp_arch(63, 512, 1024, 16, clip=True),
}


# The stem's weight: 4-D (C, 3, 7, 7) in an image model, 5-D (C, 3, 1, 7, 7)
# in a video one.
STEM_WEIGHT = 'feat_extractor.conv1.weight'


# The op table and the RoI grid live with the model (models/layers), whose
# package imports this module as it loads: the functions below import them
# when called.
def parse_arch(arch: Union[str, dict], zoo: Optional[dict] = None) -> dict:
    """A zoo name or an arch dict -> the full form with every option filled
    in (``num_tokens``, ``num_points``, ``stages`` with every stage option,
    and the arch options of ``ARCH_DEFAULTS``).

    Args:
        arch (str | dict): a key of ``zoo`` (case-insensitive), the full
            form, or the short form (``SHORT_KEYS``).
        zoo (dict, optional): named archs. Defaults to ``ARCH_ZOO``.

    Raises:
        ValueError: naming the bad key or value and what is allowed.
    """
    zoo = ARCH_ZOO if zoo is None else zoo
    if isinstance(arch, str):
        key = arch.lower()
        if key not in zoo:
            raise ValueError(
                f"arch '{arch}' is not one of {sorted(set(zoo))};"
                ' or pass a dict with num_tokens, num_points and stages '
                f'(or the short form {list(SHORT_KEYS)})')
        arch = zoo[key]
    if not isinstance(arch, dict):
        raise ValueError(f'arch must be a name or a dict, got '
                         f'{type(arch).__name__}')
    arch = copy.deepcopy(dict(arch))
    if 'stages' not in arch and set(SHORT_KEYS) & set(arch):
        missing = [k for k in SHORT_KEYS if k not in arch]
        extra = sorted(set(arch) - set(SHORT_KEYS) - set(ARCH_DEFAULTS))
        if missing or extra:
            raise ValueError(
                f'a short-form arch must have exactly the keys '
                f'{list(SHORT_KEYS)}; missing {missing}, unexpected '
                f'{extra}. Or give num_tokens, num_points and stages.')
        arch = dict(num_tokens=arch.pop('num_tokens'),
                    num_points=arch.pop('num_points'),
                    stages=v1_stages(arch.pop('focus_dims'),
                                     arch.pop('cortex_dims'),
                                     arch.pop('cortex_depth')), **arch)
    allowed = {'num_tokens', 'num_points', 'stages', *ARCH_DEFAULTS}
    missing = [k for k in ('num_tokens', 'num_points', 'stages')
               if k not in arch]
    if missing or set(arch) - allowed:
        raise ValueError(
            f'an arch dict needs num_tokens, num_points and stages '
            f'(missing {missing}) and may set {sorted(ARCH_DEFAULTS)}; '
            f'unexpected keys {sorted(set(arch) - allowed)}')
    for key in ('num_tokens', 'num_points'):
        value = arch[key]
        # bool is an int subclass; a float here fails later obscurely
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < 1:
            raise ValueError(f'arch {key} must be a positive integer, '
                             f'got {value!r}')
    if not arch['stages']:
        raise ValueError('arch stages is empty: give at least one stage.')
    from .models.layers.unit import OPS
    stages = []
    for i, st in enumerate(arch['stages']):
        where = f'arch stages[{i}]'
        if not isinstance(st, dict) or not {'width', 'ops'} <= set(st):
            raise ValueError(f'{where} must be a dict with width and '
                             f'ops, got {st!r}')
        unknown = sorted(set(st) - {'width', 'ops'} - set(STAGE_DEFAULTS))
        if unknown:
            raise ValueError(f'{where}: unknown options {unknown}; the '
                             f'options are {sorted(STAGE_DEFAULTS)}')
        bad_ops = [op for op in st['ops'] if op not in OPS]
        if bad_ops:
            raise ValueError(f'{where}: unknown ops {bad_ops}; choose '
                             f'from {list(OPS)}')
        st = {**STAGE_DEFAULTS, **st, 'ops': tuple(st['ops'])}
        if st['num_heads'] is not None and st['head_dims'] is not None:
            raise ValueError(f'{where}: set num_heads or head_dims, '
                             'not both')
        stages.append(st)
    if arch.get('roi_init', 'grid') not in ROI_INITS:
        raise ValueError(f"arch roi_init '{arch['roi_init']}' is not one "
                         f'of {list(ROI_INITS)}')
    grid = arch.get('token_grid')
    if grid is not None:
        if arch.get('roi_init', 'grid') != 'grid':
            raise ValueError(
                f"arch token_grid lays out roi_init='grid'; got "
                f"roi_init='{arch['roi_init']}': drop one of the two.")
        from .models.layers.roi_geometry import grid_init_rois
        grid_init_rois(arch['num_tokens'], grid=grid)  # checks the shape
        arch['token_grid'] = tuple(int(v) for v in grid)
    if sum(st['cls_token'] for st in stages) > 1:
        raise ValueError('more than one stage sets cls_token=True; a '
                         'model has one class token.')
    return {**ARCH_DEFAULTS, **arch, 'stages': stages}


def zoo_name(arch: Union[str, dict], zoo: Optional[dict] = None
             ) -> Optional[str]:
    """The (longest) name in ``zoo`` of the model ``arch`` describes, or
    ``None`` when it is no zoo model."""
    zoo = ARCH_ZOO if zoo is None else zoo
    full = parse_arch(arch, zoo)
    names = [k for k, v in zoo.items() if parse_arch(v, zoo) == full]
    return max(names, key=len) if names else None


def arch_name(arch: Union[str, dict], zoo: Optional[dict] = None) -> str:
    """``"'tiny'"`` etc. for a zoo arch, else the dict as text (for
    messages)."""
    name = zoo_name(arch, zoo)
    return repr(name) if name else str(arch)


def infer_arch(sd: Dict[str, Tensor], src: str = '<checkpoint>') -> dict:
    """Read ``arch`` off backbone-level tensors (no ``backbone.`` prefix).

    A v1-shaped model (a focusing unit, a transition, a sampling cortex
    block, plain cortex blocks) comes back in the short form
    ``dict(num_tokens, focus_dims, cortex_dims, cortex_depth, num_points)``;
    any other layer stack as ``dict(num_tokens, num_points, stages=[...])``
    with one stage per unit (each op shown by its ``Op.key``). What the
    tensors cannot tell (shared-weight repeats without a stage embedding,
    heads) takes the v1 defaults.
    """
    needed = ('initial_roi.weight', 'initial_embedding.weight')
    missing = [k for k in needed if k not in sd]
    if missing:
        raise ValueError(
            f'{src} is not a SparseFormer checkpoint: missing {missing}. '
            f'Its first keys are {sorted(sd)[:8]}.')
    from .models.layers.unit import unit_ops
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
        ops = unit_ops(keys)
        if not ops:  # a width transition: Linear (+ LayerNorm)
            width = int(sd[f'layers.{i}.0.weight'].shape[0])
            continue
        stage = dict(width=width, ops=ops)
        if 'sampling' in ops:
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
