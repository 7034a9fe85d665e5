"""Build mmaction2 video lists for a Kinetics-style folder tree.

Reads ``ROOT/videos_{train,val}/<class>/*.{mp4,webm,mkv,avi}`` and writes
``{prefix}_{split}_list_videos.txt`` (lines ``<class>/<file> <label>``) and
``classes.txt`` (line i = name of label i; labels are the sorted class names
of the train split, so val shares them).

Example:
    python tools/data/kinetics/build_file_list.py data/kinetics400
"""
import argparse
import sys

from kinetics_tools import build_file_list


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='dataset root with videos_train/ and '
                        'videos_val/')
    parser.add_argument('--out-dir', default=None,
                        help='where to write the lists (default: ROOT)')
    parser.add_argument('--ann-prefix', default='kinetics400',
                        help='list file name prefix')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        help='split names; the first defines the classes')
    parser.add_argument('--skip-empty-classes', action='store_true',
                        help='leave out class folders without videos '
                        '(later labels shift down) instead of stopping')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        res = build_file_list(args.root, args.out_dir, args.ann_prefix,
                              args.splits,
                              skip_empty_classes=args.skip_empty_classes)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    for name in res['skipped']:
        print(f'warning: skipped the empty class folder {name} (no label)',
              file=sys.stderr)
    for split, path in res['ann_files'].items():
        print(f'{split}: {res["counts"][split]} videos -> {path}')
    print(f'{len(res["classes"])} classes -> {res["class_file"]}')


if __name__ == '__main__':
    main()
