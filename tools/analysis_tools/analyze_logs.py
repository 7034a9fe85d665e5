"""Plot curves and training time from mmengine's JSON logs.

mmengine writes one JSON dict per line to
``{work_dir}/{timestamp}/vis_data/{timestamp}.json`` (and ``scalars.json``):
training lines carry ``loss``, ``lr``, ``epoch``, ``iter``, ``time``;
validation lines carry the metrics (``acc/top1`` for mmaction2,
``accuracy/top1`` for mmpretrain) and ``step`` (the epoch, or the iteration
in iteration-based training).

Examples:
    python tools/analysis_tools/analyze_logs.py plot_curve \
        work_dirs/demo_image/*/vis_data/scalars.json \
        --keys loss lr accuracy/top1 --out curves.png
    python tools/analysis_tools/analyze_logs.py plot_curve A.json B.json \
        --keys loss --legend run_a run_b --out loss.png
    python tools/analysis_tools/analyze_logs.py cal_train_time A.json
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

# Bookkeeping fields: never curves, and not offered as keys.
_AXES = ('epoch', 'iter', 'step')


def load_json_log(path: str) -> List[dict]:
    """Read a JSON-lines log; blank lines are skipped.

    Raises:
        SystemExit: for a missing file or a line that is not a JSON object,
            naming the file and line.
    """
    if not osp.isfile(path):
        sys.exit(f'error: log {path} does not exist')
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f'error: {path}:{lineno} is not JSON ({e.msg}); '
                         'pass the vis_data/*.json logs written by mmengine')
            if not isinstance(rec, dict):
                sys.exit(f'error: {path}:{lineno} is not a JSON object')
            records.append(rec)
    if not records:
        sys.exit(f'error: log {path} is empty')
    return records


def is_train(rec: dict) -> bool:
    """Training lines carry the global ``iter``; validation lines do not."""
    return 'iter' in rec


def available_keys(records: Sequence[dict]) -> List[str]:
    """Numeric keys that can be plotted, sorted."""
    keys = set()
    for rec in records:
        keys.update(k for k, v in rec.items()
                    if k not in _AXES and isinstance(v, (int, float)))
    return sorted(keys)


def curve(records: Sequence[dict], key: str):
    """``(xs, ys, x_label)`` of ``key``: against ``iter`` from the training
    lines if any carry it, else against ``step`` (the epoch in epoch-based
    training) from the validation lines."""
    rows = [r for r in records if isinstance(r.get(key), (int, float))]
    train = [r for r in rows if is_train(r)]
    if train:
        return ([r['iter'] for r in train], [r[key] for r in train], 'iter')
    by_epoch = any(is_train(r) and 'epoch' in r for r in records)
    return ([r.get('step', i + 1) for i, r in enumerate(rows)],
            [r[key] for r in rows], 'epoch' if by_epoch else 'step')


def plot_curve(logs: Dict[str, List[dict]],
               keys: Sequence[str],
               out: str,
               title: str = None) -> str:
    """One subplot per key, one line per log (labelled by its legend)."""
    for name, records in logs.items():
        missing = [k for k in keys if k not in available_keys(records)]
        if missing:
            sys.exit(f'error: key(s) {missing} not in log {name}; keys '
                     f'present: {", ".join(available_keys(records))}')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.8 * len(keys)),
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for name, records in logs.items():
            xs, ys, xlabel = curve(records, key)
            marker = 'o' if len(xs) <= 30 else None
            ax.plot(xs, ys, label=name, marker=marker, markersize=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if key == 'lr' or key.endswith('_lr'):
            ax.ticklabel_format(axis='y', style='sci', scilimits=(-2, 2))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cal_train_time(records: Sequence[dict], include_outliers: bool = False):
    """Per-epoch mean of the logged iteration ``time``.

    Returns:
        dict: ``epochs`` ``{epoch: mean s/iter}``, ``mean`` over all logged
        lines, ``slowest``/``fastest`` epoch and ``std`` of the epoch means;
        ``None`` if the log has no timed training lines.
    """
    per_epoch = defaultdict(list)
    for rec in records:
        if is_train(rec) and 'time' in rec:
            per_epoch[rec.get('epoch', 1)].append(rec['time'])
    if not per_epoch:
        return None
    if not include_outliers:  # the first logged window holds the warm-up
        for times in per_epoch.values():
            if len(times) > 1:
                del times[0]
    means = {e: float(np.mean(t)) for e, t in sorted(per_epoch.items())}
    all_times = [t for ts in per_epoch.values() for t in ts]
    return dict(epochs=means, mean=float(np.mean(all_times)),
                slowest=max(means, key=means.get),
                fastest=min(means, key=means.get),
                std=float(np.std(list(means.values()))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='plot keys of JSON logs to PNG')
    plot.add_argument('json_logs', nargs='+', help='vis_data/*.json logs')
    plot.add_argument('--keys', nargs='+', default=['loss'],
                      help='keys to plot, one subplot each (default: loss)')
    plot.add_argument('--legend', nargs='+',
                      help='one name per log (default: the log paths)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', default='curves.png',
                      help='output PNG (default: curves.png)')
    timing = sub.add_parser('cal_train_time',
                            help='average iteration time per epoch')
    timing.add_argument('json_logs', nargs='+', help='vis_data/*.json logs')
    timing.add_argument('--include-outliers', action='store_true',
                        help='keep the first logged window of each epoch')
    return parser.parse_args()


def main():
    args = parse_args()
    logs = [(path, load_json_log(path)) for path in args.json_logs]
    if args.task == 'plot_curve':
        names = args.legend or [path for path, _ in logs]
        if len(names) != len(logs):
            sys.exit(f'error: {len(names)} --legend names for '
                     f'{len(logs)} logs')
        if len(set(names)) != len(names):
            sys.exit('error: the logs need distinct --legend names')
        named = dict(zip(names, (records for _, records in logs)))
        print(f'wrote {plot_curve(named, args.keys, args.out, args.title)}')
        return
    for path, records in logs:
        stats = cal_train_time(records, args.include_outliers)
        print(f'{"-" * 10} {path} {"-" * 10}')
        if stats is None:
            print('no training lines with "time" in this log')
            continue
        slow, fast = stats['slowest'], stats['fastest']
        print(f'slowest epoch {slow}: {stats["epochs"][slow]:.4f} s/iter')
        print(f'fastest epoch {fast}: {stats["epochs"][fast]:.4f} s/iter')
        print(f'std over epochs: {stats["std"]:.4f}')
        print(f'average iter time: {stats["mean"]:.4f} s/iter')


if __name__ == '__main__':
    main()
