"""ViT / CLIP checkpoints -> a bootstrapped SparseFormer's initial weights.

What ``vit_to_sparseformer.py`` (beside this module) reads: the layouts of
the ViT families it knows (:data:`VIT_LAYOUTS`), the checks that every
tensor is one a bootstrapped SparseFormer can carry over
(:func:`read_vit`), the arch for a ViT (:func:`bootstrap_arch`,
:func:`fit_bootstrap_arch`) and the tensors it inherits
(:func:`vit_to_bootstrap`).

A bootstrapped SparseFormer (CVPR 2024) inherits a pre-trained ViT's
blocks from depth // 3 on, its final norm and its classifier (CLIP: its
projection), and seeds its class token from the ViT's. The patch and
position embeddings, CLIP's pre-norm and the first blocks are left
behind. Three families of ViT files are read; all store attention as one
(3 d, d) q, k, v stack, as our ``attn.qkv`` does, so tensors carry over
unchanged (CLIP's ``proj`` is stored (in, out) and is transposed).
"""
import os.path as osp
import re
import warnings
from collections import OrderedDict
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from sparseformer_mm.archs import ARCH_ZOO, STAGE_DEFAULTS, btsp_arch
from sparseformer_mm.checkpoint_safety import load_weights_only

StateDict = Dict[str, Tensor]

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
