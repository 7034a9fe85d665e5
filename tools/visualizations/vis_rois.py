"""Draw a SparseFormer's RoIs (tubes for video) and sampling points.

For an image: ``{stem}_passes.png`` (every sampling pass) and
``{stem}_density.png``; for a video also ``{stem}_tubes.png`` and the
animated ``{stem}_tubes.gif`` (the final pass frame by frame). The input goes
through the config's test pipeline, so the pictures show what the model saw.

Examples:
    python tools/visualizations/vis_rois.py \
        configs/demo/sparseformer-nano_1xb32-6e_shapes.py \
        work_dirs/demo_image/epoch_6.pth image.png --out vis/
    python tools/visualizations/vis_rois.py configs/k400.py CHECKPOINT \
        video.mp4 --out vis/ --device cuda:0
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='image (mmpretrain) or video '
                        '(mmaction2) config')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('input', help='image file, or video file for a video '
                        'config')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    parser.add_argument('--split', default='test', choices=['test', 'val'],
                        help='whose dataloader pipeline preprocesses the '
                        'input (default: test)')
    parser.add_argument('--view', type=int, default=0,
                        help='video: which clip/crop of the test pipeline '
                        'to draw (default: 0)')
    parser.add_argument('--scale', type=int, help='integer upscale (default: '
                        'short side of about 256 px)')
    parser.add_argument('--max-frames', type=int, default=8,
                        help='video: frames shown in the passes grid')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'test_dataloader.dataset.pipeline.1.clip_len=8')
    args = parser.parse_args()
    if args.scale is not None and args.scale < 1:
        parser.error(f'--scale must be a positive integer, got {args.scale}')
    if args.max_frames < 1:
        parser.error(f'--max-frames must be >= 1, got {args.max_frames}')
    return args


def main():
    args = parse_args()
    for path in (args.config, args.checkpoint, args.input):
        if osp.isdir(path):
            sys.exit(f'error: {path} is a directory')
        if not osp.isfile(path):
            sys.exit(f'error: {path} does not exist')
    # imported after the checks: a typo fails fast, before the model stack
    import sparseformer_mm  # noqa: F401  (compat fixes, registries)
    from sparseformer_mm.visualization import (init_model, trace_file,
                                               visualize_trace)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = init_model(cfg, args.checkpoint, device=args.device)
    trace, display = trace_file(model, args.input, split=args.split,
                                view=args.view)
    prefix = osp.splitext(osp.basename(args.input))[0]
    written = visualize_trace(display, trace, args.out, prefix=prefix,
                              scale=args.scale, max_frames=args.max_frames)
    kind = (f'{display.shape[0]}-frame clip' if display.ndim == 4
            else 'image')
    print(f'{args.input}: {kind} of {display.shape[-2]}x{display.shape[-3]} '
          f'px, {len(trace["passes"])} sampling passes, '
          f'{trace["rois"].shape[1]} tokens')
    for path in written:
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
