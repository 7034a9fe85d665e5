"""Generate the embedded video demo: an object moving one of 4 ways.

Writes mmaction2's Kinetics layout (``videos_{train,val}/<class>/*.mp4``,
``kinetics400_{train,val}_list_videos.txt``, ``classes.txt``); the class is
the direction of motion (move_down, move_left, move_right, move_up).

Examples:
    python tools/data/make_synthetic_videos.py data/demo/motion
    # 16:9 frames, the object anywhere in them (docs/views.md)
    python tools/data/make_synthetic_videos.py data/demo/motion_wide \
        --size 128x72
"""
import argparse
import os.path as osp
import shutil
import time

from synthetic_videos import make_motion_dataset, parse_size


def _size(text):
    try:
        return parse_size(text)
    except ValueError as e:  # argparse shows this message, not its own
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=150,
                        help='training videos per class')
    parser.add_argument('--num-val', type=int, default=30,
                        help='validation videos per class')
    parser.add_argument('--size', type=_size, default=64,
                        help='frame side (64: square) or WIDTHxHEIGHT '
                        '(128x72: 16:9); the object starts anywhere in the '
                        'frame and its size and speed follow the shorter '
                        'side')
    parser.add_argument('--num-frames', type=int, default=32,
                        help='frames per video')
    parser.add_argument('--fps', type=float, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if ROOT already has data')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # The val list is written last, so it marks a finished dataset; an
    # interrupted run is simply generated again.
    done = osp.join(args.root, 'kinetics400_val_list_videos.txt')
    if osp.isfile(done) and not args.force:
        print(f'{args.root} exists; keeping it (use --force to regenerate)')
        return
    for split in ('train', 'val'):
        # Old videos would otherwise stay in the tree and in the lists.
        shutil.rmtree(osp.join(args.root, f'videos_{split}'),
                      ignore_errors=True)
    start = time.time()
    counts = make_motion_dataset(args.root, args.num_train, args.num_val,
                                 args.size, args.num_frames, args.fps,
                                 seed=args.seed)
    print(f'wrote {counts} videos to {args.root} '
          f'in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
