"""SparseFormer architectures as data.

An arch is ``dict(num_tokens, num_points, stages=[...], **arch options)``;
a stage is ``dict(width, ops, **stage options)`` (``STAGE_DEFAULTS``). The
zoo's variants are built from two templates: the first paper's
(:func:`v1_stages`) and the bootstrapped one (:func:`btsp_stages`). Pure
data: the models and the checkpoint formats both read it.
"""
from typing import List

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
