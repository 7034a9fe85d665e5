"""Resize every video of a folder tree to a fixed short side.

Mirrors SRC_DIR into DST_DIR with each video's short side set to
``--short-side`` (aspect kept), in parallel. Files already present in
DST_DIR are skipped, so an interrupted run can simply be restarted (outputs
are renamed into place only when complete). Uses ffmpeg when installed, else
decodes with decord/cv2 and re-encodes with cv2 (mp4v, no audio, .mp4).

Every output comes from one input: inputs that would share an output
(``x.mkv`` and ``x.mp4``, both ``x.mp4`` with cv2) are refused, naming them,
before anything is written. DST_DIR may lie inside SRC_DIR (it is then not
read as input), but must not be SRC_DIR or hold it.

Example:
    python tools/data/kinetics/resize_videos.py \\
        data/kinetics400/videos_train data/kinetics400/videos_train_320
"""
import argparse
import sys

from kinetics_tools import default_num_workers, print_summary, resize_videos


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src_dir', help='folder of videos (searched '
                        'recursively)')
    parser.add_argument('dst_dir', help='output folder (same tree)')
    parser.add_argument('--short-side', type=int, default=320,
                        help='short side of the output, in pixels')
    parser.add_argument('--num-workers', type=int,
                        default=default_num_workers(),
                        help='parallel processes')
    parser.add_argument('--backend', choices=['auto', 'ffmpeg', 'cv2'],
                        default='auto',
                        help='auto: ffmpeg if on PATH, else cv2')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        res = resize_videos(args.src_dir, args.dst_dir, args.short_side,
                            args.num_workers, args.backend)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    print_summary(f'resize ({res["backend"]})',
                  dict(resized=res['resized'], skipped=res['skipped'],
                       failed=res['failed']))
    if res['failed']:
        sys.exit(1)


if __name__ == '__main__':
    main()
