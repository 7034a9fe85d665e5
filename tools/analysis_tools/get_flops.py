"""Parameters and FLOPs of an image or video config, in both conventions.

"paper" skips adaptive mixing's batched matmuls, as the SparseFormer paper's
counter did; "full" counts them. FLOPs are for one view (one image, or one
clip), a multiply-add counted once.

Examples:
    python tools/analysis_tools/get_flops.py \
        configs/sparseformer/sparseformer-tiny_8xb128_in1k.py
    python tools/analysis_tools/get_flops.py configs/k400.py --shape 32 224 224
"""
import argparse

from mmengine.config import Config, DictAction
from mmengine.registry import MODELS, DefaultScope

import sparseformer_mm  # noqa: F401  (compat fixes, registries)

from complexity import complexity, default_shape, flop_analyzers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='H W for images, T H W for video (default: 224 '
                        'and the config\'s clip length)')
    parser.add_argument('--per-module', action='store_true',
                        help='print a per-module table (full convention)')
    parser.add_argument('--max-depth', type=int, default=3)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.shape and min(args.shape) < 1:
        parser.error(f'--shape sizes must be positive, got {args.shape}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.get('backbone', {}).get('pretrained'):
        cfg.model.backbone.pretrained = None  # counting needs no weights
    shape = [3] + args.shape if args.shape else default_shape(cfg)
    ndim = 3 if cfg.default_scope == 'mmaction' else 2
    if len(shape) != ndim + 1:
        parser.error(f'--shape takes {"T H W" if ndim == 3 else "H W"} for '
                     f'this {"video" if ndim == 3 else "image"} config')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    stats = complexity(model, shape)
    print(f'config: {args.config}')
    print(f'input shape (one view): {tuple(shape)}')
    print(f'params: {stats["params"] / 1e6:.2f} M')
    print(f'GFLOPs (paper convention, mixing bmm skipped): '
          f'{stats["paper"]:.2f}')
    print(f'GFLOPs (full count): {stats["full"]:.2f}')
    if args.per_module:
        from mmengine.analysis.print_helper import complexity_stats_table
        print(complexity_stats_table(flop_analyzers(model, shape)['full'],
                                     max_depth=args.max_depth,
                                     show_param_shapes=False))


if __name__ == '__main__':
    main()
