"""Top-5 labels for one video (or, with an image config, image) file.

The file goes through the config's test pipeline and the model's data
preprocessor (``sparseformer_mm.visualization.predict``), as in
``tools/test.py``. A checkpoint that does not fit the config is refused
with what to set; ``--partial-load`` loads only what fits. An input with
NaN / Inf values (e.g. a float TIFF read unchanged) is named in a warning
and gives an error instead of a ranking of NaN scores.

Example:
    python tools/infer.py configs/k400.py CHECKPOINT demo.mp4 \
        --label-map data/kinetics400/classes.txt
"""
import argparse
import sys
import warnings


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='video (mmaction2) or image '
                        '(mmpretrain) config file')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('input', help='video file (anything decord reads), '
                        'or an image file for an image config')
    parser.add_argument('--label-map', help='class names, one per line '
                        '(index = label), e.g. the classes.txt written by '
                        'tools/data/kinetics/build_file_list.py')
    parser.add_argument('--top-k', type=int, default=5)
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0')
    parser.add_argument('--partial-load', action='store_true',
                        help='load only the weights that fit the model '
                        '(warns) instead of refusing the checkpoint')
    args = parser.parse_args()
    if args.top_k < 1:
        parser.error(f'--top-k must be >= 1, got {args.top_k}')
    return args


def main():
    args = parse_args()
    # imported after the argument checks: a bad option fails fast
    import sparseformer_mm  # noqa: F401  (compat fixes, registries)
    from sparseformer_mm.datasets.checked_dataset import path_problem
    for path in (args.config, args.checkpoint, args.input):
        problem = path_problem(path)
        if problem == 'file not found':
            problem = 'does not exist'
        if problem is not None:
            sys.exit(f'error: {path} {problem}')
    from sparseformer_mm.checkpoint_fit import (PARTIAL_HINT,
                                                CheckpointMismatchError)
    from sparseformer_mm.visualization import init_model, predict
    try:
        model = init_model(args.config, args.checkpoint, device=args.device,
                           partial=args.partial_load)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            scores = predict(model, args.input).pred_score
    except (CheckpointMismatchError, ValueError, KeyError) as e:
        msg = str(e).replace(PARTIAL_HINT['api'], PARTIAL_HINT['test'])
        sys.exit(f'error: {msg}')
    for w in caught:  # e.g. a non-finite input, named
        print(f'warning: {w.message}', file=sys.stderr)
    if not bool(scores.isfinite().all()):
        # a ranking of NaN scores is noise: print none
        sys.exit(f'error: the scores for {args.input} are not finite (NaN / '
                 'Inf), so there are no top labels to print (see the warning '
                 'above).')
    labels = None
    if args.label_map:
        with open(args.label_map, encoding='utf-8-sig') as f:
            labels = [line.strip() for line in f if line.strip()]
        if len(labels) != scores.numel():
            sys.exit(f'error: {args.label_map} has {len(labels)} names but '
                     f'the model predicts {scores.numel()} classes')
    top = scores.topk(min(args.top_k, scores.numel()))
    print(f'{args.input}:')
    for rank, (score, idx) in enumerate(zip(top.values, top.indices), 1):
        name = labels[idx] if labels else f'class {int(idx)}'
        print(f'  {rank}. {name}  ({float(score):.3f})')


if __name__ == '__main__':
    main()
