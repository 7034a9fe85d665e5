"""Measure how often SparseFormer's sampling points land on the object.

For every validation image (or clip) with a known object box, the fraction
of sampling points (and of RoI area) inside the box of the frame each point
samples, per sampling pass, against chance (the box's share of the frame).
See ``focus.py`` beside this script for the exact definitions. Run from
the repository root, as a module.

Examples:
    python -m projects.focus_and_pretraining.focus_metric \
        configs/demo/sparseformer-nano_1xb32-8e_shapes.py \
        work_dirs/demo_image/epoch_8.pth --out focus_image.json
    # random initial weights instead of a checkpoint
    python -m projects.focus_and_pretraining.focus_metric \
        configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py init
"""
import argparse
import json
import os
import os.path as osp
import sys

import sparseformer_mm  # noqa: F401  (compat fixes, registries)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='image or video config file')
    parser.add_argument('checkpoint',
                        help="checkpoint, or 'init' for freshly initialised "
                        'weights (a video config with model.backbone.'
                        'pretrained starts from those inflated weights)')
    parser.add_argument(
        '--ann', default='auto',
        help="object boxes: 'auto' (default) reads the <video>.boxes.json "
        "files of make_synthetic_videos.py or make_synthetic_images.py's "
        'ROOT/boxes.json; otherwise a json {relative path: [x1, y1, x2, y2] '
        '(inclusive pixels), or a list of them per frame for video}')
    parser.add_argument('--split', default='val', choices=['val', 'test'],
                        help='which dataloader of the config (its pipeline '
                        'decides frame sampling and geometry)')
    parser.add_argument('--seed', type=int, default=0,
                        help="the image generator's seed (for --ann auto on "
                        "data without boxes.json) and the weights' seed "
                        "with 'init'")
    parser.add_argument('--max-samples', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--out', help='write the results as json here')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides of the config')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config, DictAction

    from projects.focus_and_pretraining.focus import (
        build_model_and_dataset, evaluate_focus, format_focus_table,
        load_box_annotations)
    if not osp.isfile(args.config):
        sys.exit(f'error: config {args.config} does not exist')
    ckpt = None if args.checkpoint == 'init' else args.checkpoint
    if ckpt is not None and not osp.isfile(ckpt):
        sys.exit(f"error: checkpoint {ckpt} does not exist (or pass 'init')")
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        action = DictAction(option_strings=[], dest='o')
        ns = argparse.Namespace()
        action(None, ns, args.cfg_options)
        cfg.merge_from_dict(ns.o)
    model, dataset = build_model_and_dataset(cfg, ckpt, args.split,
                                             init_seed=args.seed)
    summary = evaluate_focus(model, dataset,
                             load_box_annotations(args.ann, args.seed),
                             batch_size=args.batch_size,
                             max_samples=args.max_samples)
    summary.update(config=args.config, checkpoint=args.checkpoint,
                   split=args.split)
    print(format_focus_table(summary, f'{args.config}  {args.checkpoint}'))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
