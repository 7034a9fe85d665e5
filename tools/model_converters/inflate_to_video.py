"""Inflate an image SparseFormer checkpoint into a VideoSparseFormer one.

Accepts our mmpretrain checkpoints and converted released weights (or the
released ``*_converted.pth`` directly). Inputs are read weights-only.

Example:
    python tools/model_converters/inflate_to_video.py \
        checkpoints/sparseformer-tiny_in1k.pth \
        checkpoints/videosparseformer-tiny_in1k-r8.pth --replicates 8
"""
import argparse
import sys

from converter_common import refuse_overwrite


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='image SparseFormer checkpoint')
    parser.add_argument('dst', help='output video checkpoint')
    parser.add_argument('--replicates', type=int, default=8,
                        help='token inflation R (N*R tokens)')
    parser.add_argument('--num-frames', type=int, default=None,
                        help='clip length the model will see; recorded in '
                        'meta, and checked to be >= R so every temporal '
                        'segment covers at least one frame')
    args = parser.parse_args()
    if args.replicates < 1:
        parser.error(f'--replicates must be >= 1, got {args.replicates}')
    refuse_overwrite(args.src, args.dst)
    # imported after the argument checks: a bad option fails fast
    import sparseformer_mm  # noqa: F401  (compat fixes, registers models)
    from sparseformer_mm.checkpoint_formats import save_checkpoint
    from sparseformer_mm.models.backbones.inflation import inflate_checkpoint
    if args.num_frames is not None and args.num_frames < args.replicates:
        sys.exit(f'error: --num-frames {args.num_frames} < --replicates '
                 f'{args.replicates}: some temporal segments would fall '
                 'between frames. Use fewer replicates or more frames.')
    try:
        ckpt = inflate_checkpoint(args.src, args.replicates)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    ckpt['meta']['num_frames'] = args.num_frames
    save_checkpoint(ckpt, args.dst)


if __name__ == '__main__':
    main()
