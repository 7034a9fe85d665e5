"""Top-5 labels for one video file, with mmaction2's inference API.

Example:
    python tools/infer.py configs/k400.py CHECKPOINT demo.mp4 \
        --label-map data/kinetics400/classes.txt
"""
import argparse
import os.path as osp
import sys

import sparseformer_mm  # noqa: F401  (compat fixes, registries)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='video config file')
    parser.add_argument('checkpoint', help='video checkpoint')
    parser.add_argument('video', help='video file (anything decord reads)')
    parser.add_argument('--label-map', help='class names, one per line '
                        '(index = label), e.g. the classes.txt written by '
                        'tools/data/kinetics/build_file_list.py')
    parser.add_argument('--top-k', type=int, default=5)
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    return parser.parse_args()


def main():
    args = parse_args()
    for path in (args.config, args.checkpoint, args.video):
        if not osp.isfile(path):
            sys.exit(f'error: {path} does not exist')
    from mmaction.apis import inference_recognizer, init_recognizer
    model = init_recognizer(args.config, args.checkpoint, device=args.device)
    scores = inference_recognizer(model, args.video).pred_score
    labels = None
    if args.label_map:
        with open(args.label_map) as f:
            labels = [line.strip() for line in f if line.strip()]
        if len(labels) != scores.numel():
            sys.exit(f'error: {args.label_map} has {len(labels)} names but '
                     f'the model predicts {scores.numel()} classes')
    top = scores.topk(min(args.top_k, scores.numel()))
    print(f'{args.video}:')
    for rank, (score, idx) in enumerate(zip(top.values, top.indices), 1):
        name = labels[idx] if labels else f'class {int(idx)}'
        print(f'  {rank}. {name}  ({float(score):.3f})')


if __name__ == '__main__':
    main()
