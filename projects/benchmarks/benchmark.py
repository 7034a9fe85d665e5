"""Benchmark SparseFormer against dense peers in one process and one run.

For every model and input it measures inference throughput (samples/s),
batch-1 latency, training-step throughput and the memory each adds, and
reports each as a ratio to the peer (Swin-T for images, Video Swin-T for
video) measured in the same run on the same input. The ``per_video`` group
times each video model at its own published test protocol (frames, clips x
crops, crop size, read from its config) and reports the cost of one test
video next to the Kinetics-400 top-1 published for it. ``--compile`` adds
``torch.compile`` rows next to the eager ones. Writes JSON, a markdown table
and PNG plots; ``--doc`` also writes the full ``docs/benchmarks.md``.

Run from the repository root, as a module (``projects`` and ``tools``
import from there).

Examples:
    # the default set (about 12 minutes on a 2-core CPU); docs regenerated:
    python -m projects.benchmarks.benchmark --doc docs/benchmarks.md
    # the per-video table alone (a few minutes on a 2-core CPU):
    python -m projects.benchmarks.benchmark --groups per_video
    # compiled next to eager:
    python -m projects.benchmarks.benchmark --groups video --compile
    # a few models, one resolution, on a GPU in bf16 and fp16:
    python -m projects.benchmarks.benchmark --groups image \
        --models sparseformer-t swin-t --dtypes fp32 bf16 fp16 --device cuda
    # any config file is a model name too:
    python -m projects.benchmarks.benchmark --groups image \
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

from projects.benchmarks.benchmark_utils import (
    MMACTION_K400, ZOO, build, flops_and_params, hw, input_shape,
    machine_info, mmaction_config, prepare, profile_top_ops, published_top1,
    read_test_protocol, release_heap, resolve_spec, summarise,
    time_interleaved, warm_up_machine)

PEERS = {'image': 'swin-t', 'video': 'videoswin-t'}
OURS_K400 = ('configs/videosparseformer/videosparseformer-tiny_in1k-pre_'
             '8xb8-32x2x1-30e_kinetics400-rgb.py')
FULL_FRAME = 'videosparseformer-t full-frame'
# its tokens on a 12 x 7 grid: a 224² crop's token density over the frame
OURS_K400_GRID = ('configs/videosparseformer/videosparseformer-tiny-grid12x7_'
                  'in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb_full-frame.py')
FULL_FRAME_GRID = 'videosparseformer-t full-frame, 12x7 tokens'
# The per-video table: each model at its own published test protocol (read
# from ``config``; the mmaction2 K400 config of ``model`` by default) and the
# Kinetics-400 top-1 its authors published, with the source.
PER_VIDEO = [
    dict(label='videosparseformer-t', model='videosparseformer-t',
         config=OURS_K400),
    dict(label=FULL_FRAME, model='videosparseformer-t', config=OURS_K400,
         full_frame=True),
    dict(label=FULL_FRAME_GRID, model=OURS_K400_GRID, config=OURS_K400_GRID),
    dict(label='videoswin-t', model='videoswin-t',
         paper=(78.8, 'Video Swin Transformer (Liu et al., CVPR 2022, '
                'arXiv:2106.13230), K400 comparison table, Swin-T IN-1K')),
    dict(label='mvitv2-s', model='mvitv2-s',
         paper=(81.0, 'MViTv2 (Li et al., CVPR 2022, arXiv:2112.01526), '
                'K400 comparison table, MViTv2-S 16x4')),
    dict(label='x3d-m', model='x3d-m',
         paper=(76.0, 'X3D (Feichtenhofer, CVPR 2020, arXiv:2004.04730), '
                'K400 comparison table, X3D-M')),
    dict(label='uniformer-s', model='uniformer-s',
         paper=(80.8, 'UniFormer (Li et al., ICLR 2022, arXiv:2201.04676), '
                'K400 table, UniFormer-S 16x4; the reference column of '
                "mmaction2's uniformer README")),
    dict(label='uniformerv2-b', model='uniformerv2-b',
         paper=(84.4, 'UniFormerV2 (Li et al., ICCV 2023, arXiv:2211.09552)'
                ', B/16 CLIP, 8 frames; the reference column of '
                "mmaction2's uniformerv2 README")),
    dict(label='videomae-b', model='videomae-b',
         paper=(81.5, 'VideoMAE (Tong et al., NeurIPS 2022, '
                'arXiv:2203.12602), ViT-B 16x224; the reference column of '
                "mmaction2's videomae README")),
]
PER_VIDEO_LABELS = {p['label'] for p in PER_VIDEO}
# Acceptance of the per-video table: (peer, our per-video time at most this
# fraction of the peer's; ``strict``: below it).
PER_VIDEO_TARGETS = [('videoswin-t', 1 / 10, False),
                     ('mvitv2-s', 1 / 3, False),
                     ('x3d-m', 1.0, True)]
# The default set: what fits in about 12 minutes on a 2-core CPU.
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
    # the PER_VIDEO rows, each model at its own test protocol
    per_video=dict(models=[p['label'] for p in PER_VIDEO], views=None),
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
                   f'{", ".join(ZOO)}; or config paths); in per_video: keep '
                   'the rows of these models')
    p.add_argument('--resolutions', type=int, nargs='+',
                   help='replace the image / video resolutions of the sweeps '
                   '(per_video, for quick checks: the first is every '
                   'protocol\'s short side)')
    p.add_argument('--frames', type=int, nargs='+',
                   help='replace the frame counts of the video sweep '
                   '(per_video, for quick checks: the first is every '
                   'protocol\'s frames)')
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
                   help='also measure torch.compile()d inference (fp32) of '
                   'every model, reported next to eager (slow on a CPU: '
                   'minutes of compiling a model and input)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument('--doc', help='also write this markdown page (e.g. '
                   'docs/benchmarks.md), its plots next to it in images/')
    return p.parse_args(argv)


def per_video_protocols(args):
    """The PER_VIDEO rows of this run: ``(row, TestProtocol)``, each with
    its config's protocol (``--frames`` / ``--resolutions`` shrink them for
    quick checks) and, where the config has one, its mmaction2 model-zoo
    top-1."""
    out = []
    for row in PER_VIDEO:
        if args.models and not {row['model'], row['label']} & set(
                args.models):
            continue
        row = dict(row)
        if 'config' not in row:
            row['config'] = mmaction_config(MMACTION_K400[row['model']])
        proto = read_test_protocol(row['config'], row.get('full_frame', False))
        if args.frames or args.resolutions:
            short = args.resolutions[0] if args.resolutions else proto.height
            width = round(short * proto.width / proto.height)
            proto = proto.__class__(
                frames=args.frames[0] if args.frames else proto.frames,
                clips=proto.clips, crops=proto.crops, height=short,
                width=width, config=proto.config)
        row['zoo_top1'], row['zoo_source'] = published_top1(row['config'])
        out.append((row, proto))
    return out


def plan(args):
    """The list of (group, model, view, label) to measure, in order."""
    jobs = []
    for group in args.groups:
        if group == 'per_video':
            for row, proto in per_video_protocols(args):
                res = (proto.height if proto.height == proto.width else
                       (proto.height, proto.width))
                jobs.append((group, row['model'], (proto.frames, res),
                             row['label']))
            continue
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
            if name in PER_VIDEO_LABELS and name not in ZOO:
                continue  # a per_video row (e.g. FULL_FRAME), not a model
            m = resolve_spec(name)
            if m.modality != modality:
                continue
            for view in (views or [m.view]):
                if group == 'image' and args.resolutions:
                    view = (1, args.resolutions[0])
                jobs.append((group, name, tuple(view), name))
    return jobs


def batch_for(args, group, modality, resolution):
    if group == 'per_video':
        return 1  # per-view time: one view a step
    if modality == 'video':
        return args.video_batch
    h, w = hw(resolution)
    return max(1, round(args.image_batch * 224**2 / (h * w)))


def workloads(args, group, name):
    """(key, mode, dtype, batch-or-None, compiled) measured for a model in a
    group."""
    detailed = group in ('image', 'video') and (
        args.models or name in DEFAULT_GROUPS[group].get('detail', []))
    out = [('infer_fp32', 'infer', 'fp32', None, False)]
    if args.compile:
        out.append(('infer_fp32_compiled', 'infer', 'fp32', None, True))
    if group == 'image' or (group == 'video' and args.video_batch > 1):
        # (at batch 1 the inference step time is the latency)
        out.append(('latency_fp32', 'infer', 'fp32', 1, False))
    if detailed:
        out += [(f'infer_{d}', 'infer', d, None, False) for d in args.dtypes
                if d != 'fp32' and (d != 'fp16' or args.device != 'cpu')]
        if not args.no_train:
            out.append(('train_fp32', 'train', 'fp32', None, False))
    return out


def fmt_time(s):
    return f'{int(s) // 60:02d}:{int(s) % 60:02d}'


def measurement_sets(jobs):
    """Jobs measured together (interleaved): a sweep's models at one view;
    a standard-view group's models each at its own view."""
    sets = OrderedDict()
    for job in jobs:
        group, view = job[0], job[2]
        key = ((group, ) if group in ('image', 'video', 'per_video') else
               (group, view))
        sets.setdefault(key, []).append(job)
    return list(sets.values())


def run(args):
    device = torch.device(args.device)
    jobs = plan(args)
    protocols = {row['label']: (row, proto)
                 for row, proto in (per_video_protocols(args)
                                    if 'per_video' in args.groups else [])}
    total = sum(len(workloads(args, g, n)) for g, n, _, _ in jobs)
    results, done, start = [], 0, time.time()
    flops_cache = {}
    if args.warmup > 0:  # (--warmup 0: quick checks, nothing warmed)
        warm_up_machine()
    for jobset in measurement_sets(jobs):
        # rows are keyed by label: a model can run at two views in a set
        models, rows = {}, {}
        for group, name, (frames, res), label in jobset:
            spec = resolve_spec(name)
            shape = input_shape(spec.modality, frames, res)
            key = (name, tuple(shape))
            model = build(name, frames, res)
            if key not in flops_cache:
                flops_cache[key] = flops_and_params(model, shape)
            models[label] = model.to(device)
            rows[label] = dict(group=group, model=name, label=label,
                               modality=spec.modality, frames=frames,
                               resolution=res, shape=shape,
                               **flops_cache[key])
            if group == 'per_video':
                row, proto = protocols[label]
                rows[label]['protocol'] = dict(
                    clips=proto.clips, crops=proto.crops, views=proto.views,
                    config=proto.config, zoo_top1=row['zoo_top1'],
                    zoo_source=row['zoo_source'],
                    paper_top1=row.get('paper', (None, None))[0],
                    paper_source=row.get('paper', (None, None))[1],
                    full_frame=row.get('full_frame', False))
        wkeys = OrderedDict()
        for group, name, _, label in jobset:
            for w in workloads(args, group, name):
                wkeys.setdefault(w[0], []).append((label, w))
        for wkey, members in wkeys.items():
            steps = {}
            for label, (_, mode, dtype, batch, compiled) in members:
                row = rows[label]
                batch = batch or batch_for(args, row['group'],
                                           row['modality'], row['resolution'])
                try:
                    steps[label], row[wkey] = prepare(
                        models[label], row['shape'], batch, mode, dtype,
                        device, compiled)
                except Exception as e:  # one failure keeps the rest
                    row[wkey] = dict(error=repr(e)[:300])
            times = time_interleaved(steps, device, args.warmup,
                                     args.repeats)
            for label, _ in members:
                row, r = rows[label], rows[label][wkey]
                if label in times:
                    r.update(summarise(times[label], r['batch']))
                done += 1
                elapsed = time.time() - start
                left = elapsed / done * (total - done)
                what = (f'{r["throughput"]:.2f} samples/s, '
                        f'+{r["peak_mem_mb"]:.0f} MB' if 'throughput' in r
                        else f'FAILED {r["error"]}')
                print(f'[{done:3d}/{total}] {fmt_time(elapsed)} elapsed, '
                      f'~{fmt_time(left)} left | {row["group"]}: {label} '
                      f'{"x".join(map(str, row["shape"][1:]))} {wkey} '
                      f'b{r.get("batch", "?")}: {what}', flush=True)
            del steps
            release_heap()
        results += [rows[job[3]] for job in jobset]
        del models
    add_ratios(results)
    add_per_video(results)
    data = dict(machine=machine_info(device), args=vars(args),
                wall_s=time.time() - start, results=results)
    if any(not ok for *_, ok in per_video_checks(data)):
        # a missed per-video target: say where our time goes
        row = next(r for r in results if r.get('label') == FULL_FRAME)
        model = build(row['model'], row['frames'], row['resolution'])
        data['profile'] = dict(shape=row['shape'],
                               ops=profile_top_ops(model, row['shape']))
        data['wall_s'] = time.time() - start
    return data


def _view(row):
    """A row's view as a hashable ``(frames, resolution)``."""
    res = row['resolution']
    return row['frames'], res if isinstance(res, int) else tuple(res)


def add_ratios(results):
    """``ratio`` in each workload: throughput over the peer's in the same
    group on the same view. In the ``video`` and ``per_video`` groups each
    model runs its own view, so there the ratio is per view against the
    peer's view. Compiled workloads also get ``vs_eager``: their throughput
    over the same row's eager one."""
    for row in results:
        peer_name = PEERS[row['modality']]
        for peer in results:
            same_view = _view(peer) == _view(row)
            if (peer['model'] == peer_name and peer['group'] == row['group']
                    and (same_view or row['group'] in ('video',
                                                       'per_video'))):
                for key, r in row.items():
                    p = peer.get(key)
                    if (isinstance(r, dict) and 'throughput' in r
                            and isinstance(p, dict) and 'throughput' in p):
                        r['ratio'] = r['throughput'] / p['throughput']
                        r['mem_ratio'] = (r['peak_mem_mb'] /
                                          max(p['peak_mem_mb'], 1e-9))
                break
        for key, r in row.items():
            eager = row.get(key[:-len('_compiled')])
            if (key.endswith('_compiled') and 'throughput' in r
                    and isinstance(eager, dict) and 'throughput' in eager):
                r['vs_eager'] = r['throughput'] / eager['throughput']


def add_per_video(results):
    """Per test video in the ``per_video`` group: for every timed workload,
    ``per_video_s`` = views x the time of one view (batch 1), and
    ``vs_full_frame`` = that time over VideoSparseFormer-T full-frame's;
    per row, ``gflops_video`` = views x GFLOPs of one view (full count)."""
    rows = [r for r in results if r['group'] == 'per_video']
    ours = next((r for r in rows if r['label'] == FULL_FRAME), None)
    for row in rows:
        views = row['protocol']['views']
        row['gflops_video'] = (None if row['full'] is None else
                               views * row['full'])
        for key, r in row.items():
            if isinstance(r, dict) and 'step_s' in r:
                r['per_video_s'] = views * r['step_s']
    for row in rows:
        for key, r in row.items():
            o = (ours or {}).get(key)
            if (isinstance(r, dict) and 'per_video_s' in r
                    and isinstance(o, dict) and 'per_video_s' in o):
                r['vs_full_frame'] = r['per_video_s'] / o['per_video_s']


def per_video_checks(data, key='infer_fp32'):
    """The per-video acceptance: ``(peer, ours / peer per-video time, limit,
    strict, met)`` for each peer of :data:`PER_VIDEO_TARGETS` in the run."""
    by = {r['label']: r for r in data['results']
          if r['group'] == 'per_video'}
    ours = by.get(FULL_FRAME, {}).get(key, {})
    out = []
    for peer, limit, strict in PER_VIDEO_TARGETS:
        p = by.get(peer, {}).get(key, {})
        if 'per_video_s' in ours and 'per_video_s' in p:
            frac = ours['per_video_s'] / p['per_video_s']
            out.append((peer, frac, limit, strict,
                        frac < limit if strict else frac <= limit))
    return out


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
    if 'vs_eager' in r:
        s += f'; {r["vs_eager"]:.2f}× eager'
    return s


def _gflops(v):
    return '' if v is None else f'{v:.2f}'


def _label(r):
    return r.get('label', r['model'])


def _input(r):
    return 'x'.join(map(str, r['shape'][1:]))


def _short(path):
    """A path inside the mmaction2 wheel from ``mmaction/`` on."""
    if path and '/mmaction/' in path:
        return 'mmaction/' + path.split('/mmaction/', 1)[1]
    return path


def per_video_table(data):
    """The cost of one test video at each model's own protocol, next to the
    Kinetics-400 top-1 published for it (and where that number comes
    from)."""
    rows = [r for r in data['results'] if r['group'] == 'per_video']
    if not rows:
        return ''
    compiled = any('infer_fp32_compiled' in r for r in rows)
    head = ['model', 'test views (clips × crops)', 'input per view',
            'params (M)', 'GFLOPs per view', 'GFLOPs per video',
            's per view', '**s per video**', f'× {FULL_FRAME}']
    if compiled:
        head += ['s per video, compiled', f'compiled × {FULL_FRAME}']
    head += ['K400 top-1 (mmaction2 zoo)', 'K400 top-1 (authors)']
    lines = ['### Per test video, each model at its own test protocol', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def timing(r, key):
        r = r.get(key)
        if not isinstance(r, dict):
            return ['', '']
        if 'error' in r:
            return ['failed', '']
        ratio = (f'**{r["vs_full_frame"]:.2f}×**' if 'vs_full_frame' in r
                 else '')
        return [f'{r["per_video_s"]:.2f}', ratio]

    def top1(v):
        return 'not measured' if v is None else f'{v:.1f}'
    for r in rows:
        p = r['protocol']
        r0 = r.get('infer_fp32', {})
        cells = [_label(r), f'{p["views"]} ({p["clips"]} × {p["crops"]})',
                 _input(r), f'{r["params"] / 1e6:.1f}', _gflops(r['full']),
                 _gflops(r['gflops_video']),
                 f'{r0["step_s"]:.3f}' if 'step_s' in r0 else 'failed']
        per_video, ratio = timing(r, 'infer_fp32')
        cells += [f'**{per_video}**' if per_video[:1].isdigit()
                  else per_video, ratio]
        if compiled:
            cells += timing(r, 'infer_fp32_compiled')
        cells += [top1(p['zoo_top1']), top1(p['paper_top1'])]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Seconds per video = views × seconds per view (one view a '
              'forward pass, batch 1, fp32 inference; the median of the '
              'timed rounds). GFLOPs per video = views × GFLOPs per view '
              '(full count). The ratio column is a row\'s time per video '
              f'over {FULL_FRAME}\'s. Test protocols are read from each '
              'config\'s test pipeline (VideoSparseFormer-T full-frame: the '
              'same config, one view of the whole frame per clip, short side '
              'as there, 16:9). Top-1 sources:', '']
    for r in rows:
        p = r['protocol']
        src = [f'config `{_short(p["config"])}`']
        if p['zoo_top1'] is not None:
            src.append(f'mmaction2 zoo {p["zoo_top1"]:.2f} '
                       f'(`{_short(p["zoo_source"])}`, entry of that '
                       'config: mmaction2\'s test at this protocol)')
        if p['paper_top1'] is not None:
            src.append(f'authors {p["paper_top1"]:.1f} '
                       f'({p["paper_source"]})')
        if p['zoo_top1'] is None and p['paper_top1'] is None:
            src.append('top-1 not measured (no Kinetics-400 training run '
                       'yet)')
        lines.append(f'- {_label(r)}: ' + '; '.join(src))
    lines.append('')
    return '\n'.join(lines)


def compile_table(data):
    """Compiled next to eager, for every row measured both ways."""
    rows = [r for r in data['results'] if 'infer_fp32_compiled' in r]
    if not rows:
        return ''
    lines = ['### Compiled (`torch.compile`) vs eager, fp32 inference', '',
             '| group | model | input | eager (samples/s) | compiled '
             '(samples/s) | compiled / eager | whole graph | first compiled '
             'call (s) |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        e, c = r.get('infer_fp32', {}), r['infer_fp32_compiled']
        if 'error' in c:
            lines.append(f'| {r["group"]} | {_label(r)} | {_input(r)} | '
                         f'{e.get("throughput", float("nan")):.2f} | '
                         f'failed: {c["error"][:100]} | | | |')
            continue
        whole = ('yes' if c.get('fullgraph') else
                 f'no: {c.get("fullgraph_error", "")[:100]}')
        ratio = f'**{c["vs_eager"]:.2f}×**' if 'vs_eager' in c else ''
        lines.append(f'| {r["group"]} | {_label(r)} | {_input(r)} | '
                     f'{e.get("throughput", float("nan")):.2f} | '
                     f'{c["throughput"]:.2f} | {ratio} | {whole} | '
                     f'{c["first_call_s"]:.1f} |')
    lines.append('')
    return '\n'.join(lines)


def markdown_tables(data):
    """One table a group; ratios are to the peer in the same run."""
    lines = []
    keys_seen = []
    for row in data['results']:
        for k in row:
            if (isinstance(row[k], dict) and k != 'protocol'
                    and k not in keys_seen):
                keys_seen.append(k)
    titles = dict(image='Images, standard view',
                  image_resolution='Images: resolution sweep',
                  video='Video, each model at its standard view (batch 1: the '
                  'step time is the latency)',
                  video_frames='Video: frames sweep (224²)',
                  video_resolution='Video: resolution sweep (32 frames)')
    for group in DEFAULT_GROUPS:
        if group == 'per_video':
            lines += [t for t in (per_video_table(data), ) if t]
            continue
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
            cells = [_label(r), _input(r), f'{r["params"] / 1e6:.1f}',
                     f'{_gflops(r["paper"])} / {_gflops(r["full"])}']
            for k in keys:
                if k.startswith('latency'):
                    cells.append(_cell(r.get(k), 'latency'))
                else:
                    cells += [_cell(r.get(k)), _cell(r.get(k), 'mem')]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    lines += [t for t in (compile_table(data), ) if t]
    return '\n'.join(lines).rstrip() + '\n'


def target_lines(data):
    """The speed targets of the project, checked against this run."""
    lines = []
    by_key = {(r['group'], r['model'], _view(r)): r
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
    by = {_label(r): r for r in data['results'] if r['group'] == 'per_video'}
    for peer, frac, limit, strict, ok in per_video_checks(data):
        o, p = by[FULL_FRAME], by[peer]
        lines.append(
            f'- VideoSparseFormer-T full-frame ({o["protocol"]["views"]} '
            f'views of {_input(o)}) vs {peer} ({p["protocol"]["views"]} '
            f'views of {_input(p)}), time per test video: **{frac:.3f}×** '
            f'the peer\'s (the peer takes {1 / frac:.1f}× as long; target '
            f'{"<" if strict else "≤"} {limit:.3g}×, '
            f'{"met" if ok else "NOT met"}){_work_ratio(o, p, limit, ok)}')
    return '\n'.join(lines)


def _work_ratio(ours, peer, limit, met):
    """GFLOPs per video and the speed each model computes them at: when
    the GFLOPs ratio alone is above ``limit``, only a model running faster
    per FLOP than its peer meets the time target."""
    if not (ours.get('gflops_video') and peer.get('gflops_video')):
        return ''
    work = ours['gflops_video'] / peer['gflops_video']
    rates = [r['gflops_video'] / r['infer_fp32']['per_video_s']
             for r in (ours, peer)]
    why = ''
    if work > limit:
        why = (' (above the target: met by computing faster per FLOP)'
               if met else ' (above the target by itself: only more GFLOPs/s'
               ' than the peer\'s could meet it)')
    return (f'; GFLOPs per video {work:.3f}× the peer\'s{why}, computed at '
            f'{rates[0]:.0f} vs {rates[1]:.0f} GFLOPs/s')


def profile_lines(data):
    """Where VideoSparseFormer-T's time goes, when a per-video target was
    missed (the run profiles it then)."""
    prof = data.get('profile')
    if not prof:
        return ''
    lines = [f'A per-video target was missed; one forward of '
             f'VideoSparseFormer-T at {"x".join(map(str, prof["shape"][1:]))}'
             ' (batch 1, fp32, `torch.profiler`), the operators with the most '
             'self CPU time:', '', '| operator | calls | ms | share |',
             '|---|---|---|---|']
    for op in prof['ops']:
        lines.append(f'| `{op["op"]}` | {op["calls"]} | {op["ms"]:.1f} | '
                     f'{op["share"] * 100:.1f} % |')
    return '\n'.join(lines) + '\n'


def full_frame_note(data):
    """When to test on the full frame and when on crops (hand-written; the
    generator owns the page), with this run's cost of the two views."""
    by = {_label(r): r for r in data['results'] if r['group'] == 'per_video'}
    crop, full = by.get('videosparseformer-t'), by.get(FULL_FRAME)
    measured = ''
    if crop and full and all('per_video_s' in r.get('infer_fp32', {})
                             for r in (crop, full)):
        c, f = crop['infer_fp32'], full['infer_fp32']
        measured = (
            f' In this run one {_input(full)} view took '
            f'{f["step_s"] / c["step_s"]:.2f}× the time of one {_input(crop)}'
            f' crop, and the {full["protocol"]["views"]} full-frame views '
            f'{f["per_video_s"] / c["per_video_s"]:.2f}× the time of the '
            f'{crop["protocol"]["views"]} crops.')
    return (
        'Dense peers test on square crops because their cost grows with the '
        'pixels: a 16:9 frame is covered by three 224² crops, three forward '
        'passes per clip. Most of VideoSparseFormer\'s cost is set by its '
        'token count (8 tube replicas × 49 tokens, each sampling a fixed '
        'number of points), not by the frame size; only its stem (a 7×7 '
        'convolution and a max-pool over every frame) grows with the '
        'pixels. So one view of the whole 224×398 frame costs a little more '
        'than one 224² crop, and 4 full-frame views cost well under the '
        f'4 × 3 crops.{measured}\n\n'
        '- **Full frame (4 × 1)**: deployment and anything priced per video; '
        'actions away from the centre stay in view. Train for it: SparseFormer '
        'places its RoIs relative to the frame, so a model trained on square '
        'crops sees a wide frame squeezed (19 points lost on the generated '
        '16:9 clips); the `_full-frame` K400 configs train on crops of the '
        'frame\'s shape. With the model\'s 49 tokens the full frame has '
        '1.78× the area per token of a crop; the `-grid12x7` config puts '
        '84 tokens on a grid of the frame\'s shape (a crop\'s density, '
        '1.5× the GFLOPs per view). On the generated 16:9 clips with small '
        'objects, the same tokens on full frames tied with 4 × 3 crops, and '
        'tokens on a grid of the frame\'s shape beat them by 11 points at '
        '0.59× their FLOPs ([views](views.md)); Kinetics-400 accuracy is '
        'not measured.\n'
        '- **Crops (4 × 3 at 224²)**: when comparing accuracy with '
        'published numbers, which the peers report at their crop '
        'protocols, or to reproduce a paper\'s test exactly.')


def plot(data, out_dir):
    """PNG plots of throughput and FLOPs along each sweep, and of published
    top-1 against the cost of one test video; returns paths."""
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
    path = plot_per_video(data, out_dir, plt)
    if path:
        paths.append(path)
    return paths


def plot_per_video(data, out_dir, plt):
    """Published K400 top-1 against seconds and GFLOPs per test video;
    models without a top-1 are vertical lines at their cost."""
    rows = [r for r in data['results'] if r['group'] == 'per_video'
            and 'per_video_s' in r.get('infer_fp32', {})]
    if not rows:
        return None
    from matplotlib.ticker import NullFormatter
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    costs = [('per_video_s', 'seconds per test video (fp32, log)'),
             ('gflops_video', 'GFLOPs per test video (full count, log)')]
    for ax, (what, xlabel) in zip(axes, costs):
        for r in rows:
            p = r['protocol']
            x = (r['infer_fp32']['per_video_s'] if what == 'per_video_s'
                 else r['gflops_video'])
            if x is None:
                continue
            top1 = p['zoo_top1'] if p['zoo_top1'] is not None else (
                p['paper_top1'])
            name = f'{_label(r)} ({p["views"]} views)'
            if top1 is None:
                ax.axvline(x, ls='--', color='tab:red' if p['full_frame']
                           else 'tab:orange', label=f'{name}: top-1 not '
                           'measured')
            else:
                ax.plot(x, top1, 'o', color='tab:blue')
                ax.annotate(name, (x, top1), fontsize=7,
                            textcoords='offset points', xytext=(4, 3))
        ax.set(xscale='log', xlabel=xlabel,
               ylabel='Kinetics-400 top-1 (%, published)')
        ax.xaxis.set_minor_formatter(NullFormatter())  # (labels collide)
        ax.grid(True, which='both', alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # below the axes, clear of the points' labels
        fig.legend(handles, labels, fontsize=7, loc='lower center',
                   ncol=len(handles))
    machine = data['machine'].get('gpu') or data['machine']['cpu']
    fig.suptitle('each model at its own test protocol; top-1: mmaction2 '
                 f'model zoo — {machine}', fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = osp.join(out_dir, 'benchmark_per_video.png')
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def doc_page(data, md_tables, plots, doc_path, argv):
    m = data['machine']
    rel = [osp.relpath(p, osp.dirname(osp.abspath(doc_path))) for p in plots]
    cmd = 'python -m projects.benchmarks.benchmark ' + ' '.join(argv)
    lines = [
        '# Benchmarks', '',
        '<!-- Written by projects/benchmarks/benchmark.py; do not edit. -->',
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
        'did, "full" counts them. The per-video table times each video model '
        'at its own published test protocol and sets the cost of one test '
        'video next to the Kinetics-400 top-1 published for it.', '',
        '## Reproduce', '', '```bash', 'make benchmark   # = ' + cmd,
        '# one group, e.g. the per-video table; --compile adds compiled rows',
        'python -m projects.benchmarks.benchmark --groups per_video', '```',
        '',
        '## Machine', '',
        f'- {m.get("gpu") or m["cpu"]} ({m["cpu_count"]} CPU cores, '
        f'{m["torch_threads"]} torch threads), {m["platform"]}',
        f'- torch {m["torch"]}, Python {m["python"]}, device `{m["device"]}`',
        f'- whole run: {data["wall_s"] / 60:.1f} min', '',
        '## Targets', '', target_lines(data) or '(not in this run)', '']
    prof = profile_lines(data)
    if prof:
        lines += [prof]
    lines += ['## Per test video: full frame or crops', '',
              full_frame_note(data),
              '', '## Plots', '']
    lines += [f'![{osp.basename(p)}]({p})' for p in rel]
    lines += ['', '## Tables', '', md_tables]
    return '\n'.join(lines).rstrip() + '\n'


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
        f.write('\n\n'.join(t for t in (tables, target_lines(data),
                                          profile_lines(data)) if t))
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
    print(profile_lines(data))
    print('wrote ' + ', '.join(written))


if __name__ == '__main__':
    main()
