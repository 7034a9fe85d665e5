"""Decode every video of an annotation list and report unreadable ones.

Each listed video is opened with the decoder training uses and a few
frames, including the last one, are read. Exits with status 1 if any video
fails. The decoder is the one the config's pipelines open videos with
(``--config``), or ``--backend``; by default PyAV, as the K400 configs
decode (decord reads neither AV1 nor GIF files, which PyAV reads).

Example:
    python tools/data/kinetics/check_videos.py \\
        data/kinetics400/kinetics400_val_list_videos.txt \\
        --data-prefix data/kinetics400/videos_val --min-frames 32 \\
        --out bad_val.txt --config CONFIG  # the config that trains on it
"""
import argparse
import os
import os.path as osp
import sys

from kinetics_tools import (DEFAULT_CHECK_BACKEND, check_videos,
                            config_video_backend, default_num_workers,
                            print_summary)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='list with "<video> <label>" lines')
    parser.add_argument('--data-prefix', default='',
                        help='folder the listed paths are relative to')
    parser.add_argument('--num-workers', type=int,
                        default=default_num_workers(),
                        help='parallel processes')
    parser.add_argument('--num-frames', type=int, default=3,
                        help='frames read per video, first to last')
    parser.add_argument('--min-frames', type=int, default=1,
                        help='videos with fewer frames are bad; give the '
                        "training config's min_frames (our configs: the "
                        'clip_len) so both agree')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--config', default=None,
                       help='training config: decode with the backend its '
                       'pipelines open videos with (VideoInit backend=...)')
    which.add_argument('--backend', default=None,
                       choices=['pyav', 'decord', 'torchcodec'],
                       help='decoder to check with (default: '
                       f'{DEFAULT_CHECK_BACKEND}, as the K400 configs)')
    parser.add_argument('--out', default=None,
                        help='write the unreadable videos (as listed), one '
                        'per line, to this file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        backend = (config_video_backend(args.config) if args.config else
                   args.backend or DEFAULT_CHECK_BACKEND)
        res = check_videos(args.ann_file, args.data_prefix, args.num_workers,
                           args.num_frames, min_frames=args.min_frames,
                           backend=backend)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    print_summary(f'check ({backend})', dict(ok=res['ok'], bad=res['bad']))
    if args.out:
        if osp.dirname(args.out):
            os.makedirs(osp.dirname(args.out), exist_ok=True)
        with open(args.out, 'w') as f:
            f.writelines(f'{rel}\n' for rel, _ in res['bad'])
    if res['bad']:
        sys.exit(1)


if __name__ == '__main__':
    main()
