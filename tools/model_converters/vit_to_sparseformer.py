"""Initial weights of a bootstrapped SparseFormer from a pre-trained ViT.

The ViT's blocks from ``depth // 3`` on become the SparseFormer's last
blocks, its final norm and classifier (CLIP: projection) carry over, and
its class token seeds the class embedding; the conv stem, the focusing
unit, the width transition and the sampling unit start from the reference
initialisation (``--seed``). The output is an mmpretrain checkpoint
``{'meta', 'state_dict'}`` that loads strictly into
``sparseformer_mm.models.build_classifier(meta['arch'],
meta['num_classes'], meta['head_bias'])``.

Reads (detected from the keys, read without running code): timm ViTs
(AugReg and CLIP), OpenAI CLIP / open_clip visual towers (a whole CLIP
model's state dict or the tower's), and mmpretrain ``VisionTransformer``
checkpoints; ``.safetensors`` or torch files.

The LayerNorm eps, the MLP activation and the number of heads are not
stored in a ViT file: they are taken from the source's family (printed)
and can be set with ``--source-eps``, ``--mlp-act`` and
``--source-heads``. The inherited stage uses the source's eps, so that an
inherited block computes exactly what it did in the ViT.

Example:
    python tools/model_converters/vit_to_sparseformer.py \
        vit_base_patch16_224.augreg_in21k.safetensors \
        checkpoints/btsp-augreg-base_init.pth
"""
import argparse
import logging
import sys

import torch
from mmengine.logging import MMLogger

import sparseformer_mm  # noqa: F401  (applies compat fixes, registers models)
from converter_common import refuse_overwrite
from sparseformer_mm.archs import zoo_name
from sparseformer_mm.checkpoint_formats import (save_checkpoint,
                                                unwrap_state_dict)
from sparseformer_mm.models import build_classifier
from vit_import import (bootstrap_arch, fit_bootstrap_arch, load_vit_file,
                        read_vit, vit_defaults, vit_to_bootstrap)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument('src', help='ViT checkpoint (.pth/.pt/.bin or '
                        '.safetensors)')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--arch', help='a bootstrapped zoo arch (e.g. '
                        'btsp-augreg-base), checked against the ViT; by '
                        'default one is built from the ViT')
    parser.add_argument('--num-tokens', type=int,
                        help='latent tokens (default: 48)')
    parser.add_argument('--focus-dims', type=int,
                        help='focusing-unit width (default: ViT width // 2)')
    parser.add_argument('--first-block', type=int,
                        help='first inherited ViT block (default: depth // 3)')
    parser.add_argument('--mlp-act', choices=('gelu', 'quick_gelu'),
                        help="the source's MLP activation (default: "
                        'QuickGELU for CLIP towers, else GELU)')
    parser.add_argument('--source-eps', type=float,
                        help="the source's LayerNorm eps (default: 1e-5 for "
                        'CLIP towers, else 1e-6)')
    parser.add_argument('--source-heads', type=int,
                        help="the source's attention heads (default: "
                        'width // 64)')
    parser.add_argument('--arch-eps', action='store_true',
                        help="keep the arch's LayerNorm eps (1e-5) in the "
                        "inherited blocks instead of the source's, e.g. to "
                        'match a zoo arch name exactly')
    parser.add_argument('--num-classes', type=int,
                        help='start a new classifier with this many classes '
                        "instead of carrying the ViT's head over")
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the reference initialisation')
    return parser.parse_args(argv)


def convert(args) -> dict:
    """The checkpoint for ``args``, verified by a strict load."""
    sd = unwrap_state_dict(load_vit_file(args.src), args.src)
    src = read_vit(sd, args.src, carry_head=args.num_classes is None)
    print(f'detected: {src.describe()}')
    if src.ignored:
        print(f'ignored {len(src.ignored)} tensors outside '
              f"'{src.prefix}' (e.g. a CLIP text tower): "
              f'{src.ignored[:4]}')
    if args.num_classes is None and src.head is None:
        raise ValueError(f'{args.src} has no classifier or projection to '
                         'carry over; pass --num-classes N for a new head.')
    defaults = vit_defaults(src)
    eps = defaults['eps'] if args.source_eps is None else args.source_eps
    act = args.mlp_act or defaults['mlp_act']
    heads = args.source_heads or defaults['num_heads']
    if heads is None:
        raise ValueError(f'the ViT width {src.width} is not a multiple of '
                         '64 and the number of heads is not stored in the '
                         'weights: pass --source-heads.')
    print(f'not stored in the weights, taken as: LayerNorm eps {eps}, MLP '
          f'activation {act}, {heads} heads ({defaults["notes"]}; '
          'override with --source-eps / --mlp-act / --source-heads)')

    first = src.depth // 3 if args.first_block is None else args.first_block
    if not 0 <= first < src.depth:
        raise ValueError(f'--first-block {first} is outside the ViT\'s '
                         f'blocks 0..{src.depth - 1}')
    if args.first_block is None and src.depth % 3:
        print(f'depth {src.depth} is not divisible by 3: dropping the first '
              f'{first} blocks ({src.depth} // 3), keeping {src.depth - first}'
              ' (choose with --first-block)')
    kept_eps = None if args.arch_eps else eps
    if args.arch and (args.num_tokens or args.focus_dims):
        raise ValueError('--num-tokens and --focus-dims are set by --arch; '
                         'give either.')
    if args.arch:
        arch = fit_bootstrap_arch(args.arch, src, first, eps=kept_eps,
                                  mlp_act=act, num_heads=heads)
    else:
        arch = bootstrap_arch(src, first, num_tokens=args.num_tokens or 48,
                              focus_dims=args.focus_dims,
                              eps=kept_eps, mlp_act=act,
                              num_heads=heads)
    name = zoo_name(arch)
    stages = arch['stages']
    print(f'arch: {name or "bootstrapped"} ({arch["num_tokens"]} tokens, '
          f'focusing width {stages[0]["width"]}, {stages[-1]["depth"]} '
          f'inherited blocks of width {stages[-1]["width"]}, '
          f'{stages[-1]["mlp_act"]}, eps {stages[-1]["eps"]}); the full '
          "arch is in the checkpoint's meta")

    if args.num_classes is None:
        num_classes, head_bias = src.head_out, src.head_bias
    else:
        num_classes, head_bias = args.num_classes, True
    torch.manual_seed(args.seed)
    model = build_classifier(arch, num_classes, head_bias)
    # The head's init as training starts it; mmengine logs every tensor.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    first_layer = model.backbone.cls_token_layer
    inherited, taken = vit_to_bootstrap(src, first, first_layer)
    state = model.state_dict()
    bad = [f'{k} <- {taken[k]}: {tuple(v.shape)} vs model '
           f'{tuple(state[k].shape) if k in state else "(no such key)"}'
           for k, v in inherited.items()
           if k not in state or state[k].shape != v.shape]
    if bad:
        raise ValueError(f'{args.src} does not fit arch {name or arch}: '
                         f'{bad[:10]}')
    for k, v in inherited.items():
        state[k] = v.to(state[k].dtype)  # fp16 CLIP -> fp32 is exact
    model.load_state_dict(state, strict=True)
    last = first_layer + src.depth - first - 1
    print(f'inherited: blocks {first}..{src.depth - 1} -> layers.'
          f'{first_layer}..{last}, class token, final norm'
          f'{", head" if args.num_classes is None else ""}; '
          f'{len(state) - len(inherited)} tensors from the reference init '
          f'(seed {args.seed})')
    meta = dict(arch=arch, arch_name=name, num_classes=num_classes,
                head_bias=head_bias, source=str(args.src),
                source_layout=src.layout.name, source_depth=src.depth,
                source_width=src.width, source_blocks=list(
                    range(first, src.depth)),
                layers=list(range(first_layer, last + 1)),
                source_eps=eps, inherited_eps=arch['stages'][-1]['eps'],
                mlp_act=act, head='new' if args.num_classes else 'carried',
                seed=args.seed)
    return dict(meta=meta, state_dict=state)


def main(argv=None):
    args = parse_args(argv)
    refuse_overwrite(args.src, args.dst)
    try:
        ckpt = convert(args)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    save_checkpoint(ckpt, args.dst)


if __name__ == '__main__':
    main()
