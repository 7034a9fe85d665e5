"""Convert SparseFormer weights to an mmpretrain checkpoint.

Accepts the reference library's released ``*_converted.pth`` (flat state
dict) and the original training code's checkpoints (``{'model',
'model_ema', ...}``, older key names). Inputs are read weights-only.

Example:
    python tools/model_converters/sparseformer_to_mm.py \
        sparseformer_v1_tiny_converted.pth checkpoints/sparseformer-tiny_in1k.pth
"""
import argparse
import sys

from converter_common import refuse_overwrite


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released or original checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--ema', action='store_true',
                        help="use the 'model_ema' weights of an original "
                        'training checkpoint')
    return parser.parse_args()


def main():
    args = parse_args()
    refuse_overwrite(args.src, args.dst)
    # imported after the argument checks: a bad option fails fast
    import sparseformer_mm  # noqa: F401  (compat fixes, registers models)
    from sparseformer_mm.checkpoint_formats import save_checkpoint
    from sparseformer_mm.models import convert_sparseformer
    try:
        ckpt, _ = convert_sparseformer(args.src, ema=args.ema)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    save_checkpoint(ckpt, args.dst)


if __name__ == '__main__':
    main()
