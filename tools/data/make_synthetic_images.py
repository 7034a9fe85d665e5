"""Generate the embedded image demo: a small shape on clutter, 4 classes.

Example:
    python tools/data/make_synthetic_images.py data/demo/shapes
"""
import argparse
import os.path as osp

from synthetic_images import make_shape_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=1000,
                        help='training images per class')
    parser.add_argument('--num-val', type=int, default=100,
                        help='validation images per class')
    parser.add_argument('--size', type=int, default=64, help='image size')
    parser.add_argument('--radius', type=int, nargs=2, default=None,
                        metavar=('LOW', 'HIGH'),
                        help="the object's half-size range in pixels "
                        '(default: size/8 to size/5)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if ROOT already has data')
    args = parser.parse_args()
    if osp.isdir(osp.join(args.root, 'val')) and not args.force:
        print(f'{args.root} exists; keeping it (use --force to regenerate)')
        return
    counts = make_shape_dataset(args.root, args.num_train, args.num_val,
                                args.size, seed=args.seed,
                                radius=args.radius)
    print(f'wrote {counts} images and their boxes (boxes.json) to '
          f'{args.root}')


if __name__ == '__main__':
    main()
