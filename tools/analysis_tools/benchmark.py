"""Benchmark SparseFormer against dense peers in one process and one run.

For every model and input it measures inference throughput (samples/s),
batch-1 latency, training-step throughput and the memory each adds, and
reports each as a ratio to the peer (Swin-T for images, Video Swin-T for
video) measured in the same run on the same input. Writes JSON, a markdown
table and PNG plots; ``--doc`` also writes the full ``docs/benchmarks.md``.

Examples:
    # the default set (about 10 minutes on a 2-core CPU); docs regenerated:
    python tools/analysis_tools/benchmark.py --doc docs/benchmarks.md
    # a few models, one resolution, on a GPU in bf16 and fp16:
    python tools/analysis_tools/benchmark.py --groups image \
        --models sparseformer-t swin-t --dtypes fp32 bf16 fp16 --device cuda
    # any config file is a model name too:
    python tools/analysis_tools/benchmark.py --groups image \
        --models configs/sparseformer/sparseformer-small_8xb128_in1k.py swin-t
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from collections import OrderedDict

import torch

import sparseformer_mm  # noqa: F401  (compat fixes, registries)

from benchmark_utils import (ZOO, build, flops_and_params, input_shape,
                             machine_info, prepare, release_heap,
                             resolve_spec, summarise, time_interleaved,
                             warm_up_machine)

PEERS = {'image': 'swin-t', 'video': 'videoswin-t'}
# The default set: what fits in about 10 minutes on a 2-core CPU.
DEFAULT_GROUPS = OrderedDict(
    image=dict(models=['sparseformer-t', 'sparseformer-s', 'sparseformer-b',
                       'swin-t', 'deit-s'],
               views=[(1, 224)], detail=['sparseformer-t', 'swin-t']),
    image_resolution=dict(models=['sparseformer-t', 'swin-t'],
                          views=[(1, r) for r in (160, 224, 320, 448, 512)]),
    video=dict(models=['videosparseformer-t', 'videoswin-t', 'mvitv2-s',
                       'timesformer'],
               views=None, detail=['videosparseformer-t', 'videoswin-t']),
    video_frames=dict(models=['videosparseformer-t', 'videoswin-t'],
                      views=[(t, 224) for t in (8, 16, 32, 64)]),
    video_resolution=dict(models=['videosparseformer-t', 'videoswin-t'],
                          views=[(32, r) for r in (160, 224, 288)]),
)
TARGETS = [
    # (label, group, model, view, key, minimum ratio to the peer)
    ('SparseFormer-T vs Swin-T, 224², inference', 'image_resolution',
     'sparseformer-t', (1, 224), 'infer_fp32', 2.0),
    ('SparseFormer-T vs Swin-T, 448², inference', 'image_resolution',
     'sparseformer-t', (1, 448), 'infer_fp32', 5.0),
    ('VideoSparseFormer-T vs Video Swin-T, 32x224², inference', 'video',
     'videosparseformer-t', (32, 224), 'infer_fp32', 5.0),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--groups', nargs='+', choices=list(DEFAULT_GROUPS),
                   default=list(DEFAULT_GROUPS), help='which tables to run')
    p.add_argument('--models', nargs='+',
                   help='replace the models of every group (names: '
                   f'{", ".join(ZOO)}; or config paths)')
    p.add_argument('--resolutions', type=int, nargs='+',
                   help='replace the image / video resolutions of the sweeps')
    p.add_argument('--frames', type=int, nargs='+',
                   help='replace the frame counts of the video sweep')
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'],
                   choices=['fp32', 'bf16', 'fp16'],
                   help='inference precisions; fp32 is always measured and '
                   'the others for the detailed models (fp16: GPU only)')
    p.add_argument('--no-train', action='store_true',
                   help='skip training-step measurements')
    p.add_argument('--image-batch', type=int, default=16,
                   help='image batch at 224² (scaled by area at other '
                   'resolutions, at least 1)')
    p.add_argument('--video-batch', type=int, default=1)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--repeats', type=int, default=4)
    p.add_argument('--compile', action='store_true',
                   help='measure torch.compile()d models')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument('--doc', help='also write this markdown page (e.g. '
                   'docs/benchmarks.md), its plots next to it in images/')
    return p.parse_args(argv)


def plan(args):
    """The list of (group, model, view) to measure, in order."""
    jobs = []
    for group in args.groups:
        spec = DEFAULT_GROUPS[group]
        models = args.models or spec['models']
        modality = 'video' if group.startswith('video') else 'image'
        views = spec['views']
        if args.resolutions and group.endswith('resolution'):
            t = views[0][0]
            views = [(t, r) for r in args.resolutions]
        if args.frames and group == 'video_frames':
            views = [(t, views[0][1]) for t in args.frames]
        for name in models:
            m = resolve_spec(name)
            if m.modality != modality:
                continue
            for view in (views or [m.view]):
                if group == 'image' and args.resolutions:
                    view = (1, args.resolutions[0])
                jobs.append((group, name, tuple(view)))
    return jobs


def batch_for(args, modality, resolution):
    if modality == 'video':
        return args.video_batch
    return max(1, round(args.image_batch * (224 / resolution) ** 2))


def workloads(args, group, name):
    """(key, mode, dtype, batch-or-None) measured for a model in a group."""
    detailed = group in ('image', 'video') and (
        args.models or name in DEFAULT_GROUPS[group].get('detail', []))
    out = [('infer_fp32', 'infer', 'fp32', None)]
    if group == 'image' or (group == 'video' and args.video_batch > 1):
        # (at batch 1 the inference step time is the latency)
        out.append(('latency_fp32', 'infer', 'fp32', 1))
    if detailed:
        out += [(f'infer_{d}', 'infer', d, None) for d in args.dtypes
                if d != 'fp32' and (d != 'fp16' or args.device != 'cpu')]
        if not args.no_train:
            out.append(('train_fp32', 'train', 'fp32', None))
    return out


def fmt_time(s):
    return f'{int(s) // 60:02d}:{int(s) % 60:02d}'


def measurement_sets(jobs):
    """Jobs measured together (interleaved): a sweep's models at one view;
    a standard-view group's models each at its own view."""
    sets = OrderedDict()
    for group, name, view in jobs:
        key = (group, ) if group in ('image', 'video') else (group, view)
        sets.setdefault(key, []).append((group, name, view))
    return list(sets.values())


def run(args):
    device = torch.device(args.device)
    jobs = plan(args)
    total = sum(len(workloads(args, g, n)) for g, n, _ in jobs)
    results, done, start = [], 0, time.time()
    flops_cache = {}
    warm_up_machine()
    for jobset in measurement_sets(jobs):
        models, rows = {}, {}
        for group, name, (frames, res) in jobset:
            spec = resolve_spec(name)
            shape = input_shape(spec.modality, frames, res)
            key = (name, tuple(shape))
            model = build(name, frames, res)
            if key not in flops_cache:
                flops_cache[key] = flops_and_params(model, shape)
            models[name] = model.to(device)
            rows[name] = dict(group=group, model=name,
                              modality=spec.modality, frames=frames,
                              resolution=res, shape=shape,
                              **flops_cache[key])
        wkeys = OrderedDict()
        for group, name, _ in jobset:
            for w in workloads(args, group, name):
                wkeys.setdefault(w[0], []).append((name, w))
        for wkey, members in wkeys.items():
            steps = {}
            for name, (_, mode, dtype, batch) in members:
                row = rows[name]
                batch = batch or batch_for(args, row['modality'],
                                           row['resolution'])
                try:
                    steps[name], row[wkey] = prepare(
                        models[name], row['shape'], batch, mode, dtype,
                        device, args.compile)
                except Exception as e:  # one failure keeps the rest
                    row[wkey] = dict(error=repr(e)[:300])
            times = time_interleaved(steps, device, args.warmup,
                                     args.repeats)
            for name, (_, mode, dtype, batch) in members:
                row, r = rows[name], rows[name][wkey]
                if name in times:
                    r.update(summarise(times[name], r['batch']))
                done += 1
                elapsed = time.time() - start
                left = elapsed / done * (total - done)
                what = (f'{r["throughput"]:.2f} samples/s, '
                        f'+{r["peak_mem_mb"]:.0f} MB' if 'throughput' in r
                        else f'FAILED {r["error"]}')
                print(f'[{done:3d}/{total}] {fmt_time(elapsed)} elapsed, '
                      f'~{fmt_time(left)} left | {row["group"]}: {name} '
                      f'{"x".join(map(str, row["shape"][1:]))} {wkey} '
                      f'b{r.get("batch", "?")}: {what}', flush=True)
            del steps
            release_heap()
        results += [rows[name] for _, name, _ in jobset]
        del models
    add_ratios(results)
    return dict(machine=machine_info(device), args=vars(args),
                wall_s=time.time() - start, results=results)


def add_ratios(results):
    """``ratio`` in each workload: throughput over the peer's in the same
    group on the same view. In the ``video`` group each model runs its own
    standard view, so there the ratio is per view against the peer's view."""
    for row in results:
        peer_name = PEERS[row['modality']]
        for peer in results:
            same_view = (peer['frames'], peer['resolution']) == (
                row['frames'], row['resolution'])
            if (peer['model'] == peer_name and peer['group'] == row['group']
                    and (same_view or row['group'] == 'video')):
                for key, r in row.items():
                    p = peer.get(key)
                    if (isinstance(r, dict) and 'throughput' in r
                            and isinstance(p, dict) and 'throughput' in p):
                        r['ratio'] = r['throughput'] / p['throughput']
                        r['mem_ratio'] = (r['peak_mem_mb'] /
                                          max(p['peak_mem_mb'], 1e-9))
                break


# ----------------------------------------------------------- reporting --
def _cell(r, what='throughput'):
    if not isinstance(r, dict):
        return ''
    if 'error' in r:
        return 'failed'
    if what == 'latency':
        return f'{r["step_s"] * 1e3:.0f}'
    if what == 'mem':
        return f'{r["peak_mem_mb"]:.0f}'
    s = f'{r["throughput"]:.2f} ± {r["throughput_spread"] / 2:.2f}'
    if 'ratio' in r:
        s += f' (**{r["ratio"]:.2f}×**)'
    return s


def _gflops(v):
    return '' if v is None else f'{v:.2f}'


def markdown_tables(data):
    """One table a group; ratios are to the peer in the same run."""
    lines = []
    keys_seen = []
    for row in data['results']:
        for k in row:
            if isinstance(row[k], dict) and k not in keys_seen:
                keys_seen.append(k)
    titles = dict(image='Images, standard view',
                  image_resolution='Images: resolution sweep',
                  video='Video, each model at its standard view (batch 1: the '
                  'step time is the latency)',
                  video_frames='Video: frames sweep (224²)',
                  video_resolution='Video: resolution sweep (32 frames)')
    for group in DEFAULT_GROUPS:
        rows = [r for r in data['results'] if r['group'] == group]
        if not rows:
            continue
        peer = PEERS[rows[0]['modality']]
        keys = [k for k in keys_seen if any(k in r for r in rows)]
        head = ['model', 'input', 'params (M)', 'GFLOPs paper / full']
        for k in keys:
            if k.startswith('latency'):
                head.append('latency b1 (ms)')
            else:
                head += [f'{k} (samples/s, ×{peer})', f'{k} mem (MB)']
        lines += [f'### {titles[group]}', '',
                  '| ' + ' | '.join(head) + ' |',
                  '|' + '---|' * len(head)]
        for r in rows:
            cells = [r['model'], 'x'.join(map(str, r['shape'][1:])),
                     f'{r["params"] / 1e6:.1f}',
                     f'{_gflops(r["paper"])} / {_gflops(r["full"])}']
            for k in keys:
                if k.startswith('latency'):
                    cells.append(_cell(r.get(k), 'latency'))
                else:
                    cells += [_cell(r.get(k)), _cell(r.get(k), 'mem')]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def target_lines(data):
    """The speed targets of the project, checked against this run."""
    lines = []
    by_key = {(r['group'], r['model'], (r['frames'], r['resolution'])): r
              for r in data['results']}
    for label, group, model, view, key, minimum in TARGETS:
        r = by_key.get((group, model, view), {}).get(key, {})
        if 'ratio' in r:
            ok = 'met' if r['ratio'] >= minimum else 'NOT met'
            lines.append(f'- {label}: **{r["ratio"]:.2f}×** (target ≥ '
                         f'{minimum}×, {ok})')
    res = {r['resolution']: r for r in data['results']
           if r['group'] == 'image_resolution'
           and r['model'] == 'sparseformer-t'}
    if 224 in res and 448 in res and res[224]['paper']:
        growth = res[448]['paper'] / res[224]['paper']
        ok = 'met' if growth <= 1.3 else 'NOT met'
        lines.append(f'- SparseFormer-T FLOPs growth 224² → 448²: '
                     f'**{growth:.2f}×** (target ≤ 1.3×, {ok})')
    return '\n'.join(lines)


def plot(data, out_dir):
    """PNG plots of throughput and FLOPs along each sweep; returns paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    paths = []
    sweeps = [('image_resolution', 'resolution', 'input resolution (px)',
               'images/s'),
              ('video_frames', 'frames', 'frames per clip', 'clips/s'),
              ('video_resolution', 'resolution', 'input resolution (px)',
               'clips/s')]
    for group, axis, xlabel, unit in sweeps:
        rows = [r for r in data['results'] if r['group'] == group]
        if not rows:
            continue
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for model in dict.fromkeys(r['model'] for r in rows):
            pts = sorted((r[axis], r) for r in rows if r['model'] == model)
            xs = [x for x, _ in pts]
            thr = [r['infer_fp32'].get('throughput', float('nan'))
                   for _, r in pts]
            ax1.plot(xs, thr, 'o-', label=model)
            ax2.plot(xs, [r['full'] or float('nan') for _, r in pts], 'o-',
                     label=model)
        ax1.set(xlabel=xlabel, ylabel=f'inference {unit} (fp32)',
                yscale='log', title='throughput')
        ax2.set(xlabel=xlabel, ylabel='GFLOPs per view (full count)',
                yscale='log', title='compute')
        for ax in (ax1, ax2):
            ax.grid(True, which='both', alpha=0.3)
            ax.legend()
        fig.suptitle(f'{group.replace("_", " ")} — '
                     f'{data["machine"].get("gpu") or data["machine"]["cpu"]}',
                     fontsize=9)
        fig.tight_layout()
        path = osp.join(out_dir, f'benchmark_{group}.png')
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def doc_page(data, md_tables, plots, doc_path, argv):
    m = data['machine']
    rel = [osp.relpath(p, osp.dirname(osp.abspath(doc_path))) for p in plots]
    cmd = 'python tools/analysis_tools/benchmark.py ' + ' '.join(argv)
    lines = [
        '# Benchmarks', '',
        '<!-- Written by tools/analysis_tools/benchmark.py; do not edit. -->',
        '',
        'SparseFormer and VideoSparseFormer next to dense peers built from '
        'the installed mmpretrain and mmaction2 (random weights: speed does '
        'not depend on them), measured in **one process and one run**. '
        'Throughput is the median of the timed steps (± half the '
        'interquartile spread); **bold ratios are to the peer measured in '
        'the same run on the same input** (Swin-T for images, Video Swin-T '
        'for video), which is what carries over between machines. Memory is '
        'what a workload adds on top of the built model (peak RSS on a CPU, '
        '`max_memory_allocated` on a GPU); training adds gradients and AdamW '
        'state. GFLOPs are per view, a multiply-add counted once: "paper" '
        'skips adaptive mixing\'s batched matmuls as the paper\'s counter '
        'did, "full" counts them.', '',
        '## Reproduce', '', '```bash', 'make benchmark   # = ' + cmd, '```', '',
        '## Machine', '',
        f'- {m.get("gpu") or m["cpu"]} ({m["cpu_count"]} CPU cores, '
        f'{m["torch_threads"]} torch threads), {m["platform"]}',
        f'- torch {m["torch"]}, Python {m["python"]}, device `{m["device"]}`',
        f'- whole run: {data["wall_s"] / 60:.1f} min', '',
        '## Targets', '', target_lines(data) or '(not in this run)', '',
        '## Plots', '']
    lines += [f'![{osp.basename(p)}]({p})' for p in rel]
    lines += ['', '## Tables', '', md_tables]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    data = run(args)
    json_path = osp.join(args.out_dir, 'benchmark.json')
    with open(json_path, 'w') as f:
        json.dump(data, f, indent=1)
    tables = markdown_tables(data)
    md_path = osp.join(args.out_dir, 'benchmark.md')
    with open(md_path, 'w') as f:
        f.write(tables + '\n' + target_lines(data) + '\n')
    plot_dir = args.out_dir
    if args.doc:
        plot_dir = osp.join(osp.dirname(osp.abspath(args.doc)), 'images')
        os.makedirs(plot_dir, exist_ok=True)
    plots = plot(data, plot_dir)
    written = [json_path, md_path] + plots
    if args.doc:
        with open(args.doc, 'w') as f:
            f.write(doc_page(data, tables, plots, args.doc, argv))
        written.append(args.doc)
    print(tables)
    print(target_lines(data))
    print('wrote ' + ', '.join(written))


if __name__ == '__main__':
    main()
