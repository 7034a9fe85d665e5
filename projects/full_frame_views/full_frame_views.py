"""Full-frame views vs centre / three square crops in testing: top-1, cost.

Kinetics-400 models are usually tested on 4 clips x 3 square crops (left,
centre, right) of each video. SparseFormer's cost barely grows with the
input size and it takes any aspect ratio, so one whole frame per clip may
do as well for less. This experiment measures it on the embedded data:

1. generate the motion demo's clips (``data/demo/motion``, 64x64) and
   16:9 ones whose object can be anywhere in the frame
   (``data/demo/motion_wide``, 128x72), if missing;
2. train the demo's nano VideoSparseFormer on the 16:9 clips four ways,
   from the image demo's checkpoint (inflated), with ``--seeds`` seeds
   each: ``crops``, as the Kinetics-400 crop configs train (random resized
   square crops; ``configs/videosparseformer-nano_1xb16-4x8x1-6e_
   motion-wide.py`` of this project); ``full``, as the full-frame configs train (random
   resized crops of the frame's shape, resized to the full frame's view
   size; ``..._motion-wide_full-frame.py``); ``whole``, that config on
   whole frames (no crop: the test views themselves, flipped); ``grid``,
   ``whole`` with 28 tokens on a 7 x 4 grid (arch ``token_grid``: a square
   crop's token density over the 16:9 frame; the image checkpoint's 4 x 4
   grid resampled);
3. take the motion demo's video model (``--demo-checkpoint``, else
   ``work_dirs/demo_video``'s from ``make demo``, else train it here);
4. test each model on 4 clips per video with three protocols: one centre
   crop, three crops (the crops config's test pipeline) and the full frame
   at its aspect ratio (the full-frame config's), measuring top-1, GFLOPs
   per video (every view counted, ``tools/analysis_tools/complexity.py``,
   full count) and test seconds per video (the test loop: decoding,
   pipeline and model, one process);
5. write ``OUT/results.json`` and ``OUT/table.md`` (with ``--doc``, the
   table also replaces the one between the markers in that page).

The image checkpoint is ``--image-checkpoint``, else ``make demo``'s
(``work_dirs/demo_image``), else the image demo is trained here first
(about 5 minutes on 2 cores). With both demo checkpoints made by
``make demo``, three seeds (four trainings and twelve tests each) run
side by side with one thread each took 24 minutes on a 2-core CPU.

Example (from the repository root, as a module):
    python -m projects.full_frame_views.full_frame_views \\
        --out work_dirs/exp_views --seeds 3 --doc docs/views.md
    # the same, one seed per process side by side, then one report:
    for k in 0 1 2; do python -m projects.full_frame_views.full_frame_views \\
        --out work_dirs/exp_views/seed$k --seed $k --threads 1 & done; wait
    python -m projects.full_frame_views.full_frame_views \\
        --out work_dirs/exp_views --doc docs/views.md \\
        --merge work_dirs/exp_views/seed*/results.json
    # plumbing only (tiny data, 1 epoch, no pretraining): under a minute
    python -m projects.full_frame_views.full_frame_views --out /tmp/v --quick
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import time

from projects.focus_and_pretraining.experiment_utils import (
    REPO, Laps, fit_cosine, make_motion, make_shapes, point_video_data,
    start_run, train)

CONFIGS = osp.join(REPO, 'projects', 'full_frame_views', 'configs')
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-8e_shapes.py')
DEMO_CFG = osp.join(
    REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')
CROPS_CFG = osp.join(CONFIGS,
                     'videosparseformer-nano_1xb16-4x8x1-6e_motion-wide.py')
FULL_CFG = osp.join(
    CONFIGS, 'videosparseformer-nano_1xb16-4x8x1-6e_motion-wide_full-frame.py')
WIDE_SIZE = (128, 72)  # width, height: 16:9
# 'grid': the demo's 16 tokens (4 x 4) at a square crop's density over a
# 16:9 frame: 16 x 16/9 = 28.4, laid out 7 x 4
TOKEN_GRID = (7, 4)
WIDE_MODELS = ('crops', 'full', 'whole', 'grid')  # trainings on 16:9 clips
PROTOCOLS = ('centre-crop', 'three-crop', 'full-frame')
TABLE_BEGIN = '<!-- full_frame_views table: begin -->'
TABLE_END = '<!-- full_frame_views table: end -->'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/exp_full_frame_views',
                        help='output folder (results.json, table.md, runs)')
    parser.add_argument('--data-root', default=None,
                        help='where motion/ and motion_wide/ live or are '
                        'made (default: data/demo; OUT/data with --quick)')
    parser.add_argument('--image-checkpoint', default=None,
                        help="the image demo's checkpoint the 16:9 model "
                        "starts from (default: make demo's, else trained "
                        "here); 'none': from scratch")
    parser.add_argument('--demo-checkpoint', default=None,
                        help="the motion demo's video checkpoint (default: "
                        "make demo's, else trained here)")
    parser.add_argument('--epochs', type=int, default=6,
                        help='training epochs of the 16:9 models (and of '
                        'the demo model if it is trained here)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--seeds', type=int, default=1,
                        help='train each 16:9 model with this many seeds '
                        '(SEED, SEED+1, ...); the table gives the mean '
                        'top-1 and each seed\'s')
    parser.add_argument('--threads', type=int, default=None,
                        help="torch intra-op threads (default: torch's)")
    parser.add_argument('--doc', default=None,
                        help='a markdown page whose table between the '
                        f'markers {TABLE_BEGIN} and {TABLE_END} is '
                        'replaced by the measured one')
    parser.add_argument('--merge', nargs='+', metavar='RESULTS_JSON',
                        help="no training: one report (OUT's results.json "
                        'and table.md, the --doc table) from these runs\' '
                        'results.json, e.g. one seed per process run side by '
                        'side (--seed N --seeds 1 --threads 1 each)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data, 1 epoch, no pretraining: checks '
                        'the plumbing, not the science')
    args = parser.parse_args(argv)
    for name in ('epochs', 'seeds'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    if args.doc:
        _check_doc(args.doc, parser.error)
    for path in args.merge or ():
        if not osp.isfile(path):
            parser.error(f'--merge {path}: no such file')
    for name in ('image_checkpoint', 'demo_checkpoint'):
        path = getattr(args, name)
        if path and path != 'none' and not osp.isfile(path):
            parser.error(f'--{name.replace("_", "-")} {path}: no such file')
    if args.demo_checkpoint == 'none':
        parser.error("--demo-checkpoint takes a file ('none' is for "
                     '--image-checkpoint)')
    return args


def _check_doc(path, error):
    if not osp.isfile(path):
        error(f'--doc {path}: no such file')
    with open(path) as f:
        text = f.read()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        error(f'--doc {path}: the page needs the lines {TABLE_BEGIN} and '
              f'{TABLE_END} around the table to replace')


# ---------------------------------------------------------------------------
# Data, checkpoints, configs
# ---------------------------------------------------------------------------


def make_data(data_root: str, quick: bool) -> dict:
    """The square demo clips and the 16:9 ones, generated where missing
    (the same defaults as ``tools/data/make_synthetic_videos.py``)."""
    counts = (2, 1) if quick else (150, 30)
    return {name: make_motion(osp.join(data_root, name), *counts, size=size)
            for name, size in (('motion', 64), ('motion_wide', WIDE_SIZE))}


def make_demo_checkpoint(path_arg, work_dir):
    """``path_arg``, else the checkpoint named by ``work_dir/last_checkpoint``
    (a ``make demo`` run), else None."""
    if path_arg:
        return None if path_arg == 'none' else osp.abspath(path_arg)
    last = osp.join(REPO, work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            path = f.read().strip()
        if osp.isfile(path):
            return path
        if osp.isfile(osp.join(REPO, path)):
            return osp.join(REPO, path)
    return None


def run_config(path: str, work_dir: str, epochs, seed: int, quick: bool):
    """``path`` as one run here: ``epochs`` epochs of a video config (its
    cosine cut to fit; None: the config's schedule), validation at the end
    only, no RoI pictures, tiny loaders with ``quick``."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if epochs is None:
        epochs = cfg.train_cfg.max_epochs
    else:  # a video demo's schedule: warm-up, then one cosine
        fit_cosine(cfg, epochs, t_max=True)
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=epochs, max_keep_ckpts=1)
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'] != 'RoIVisualizationHook']
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = osp.basename(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if loader not in cfg:
            continue
        if quick:
            cfg[loader].batch_size = 4
        # one process: decoding time counts in the test loop's time
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    return cfg


def whole_frame_training(cfg) -> None:
    """Train on the whole frame, as it is tested: the full-frame config's
    training pipeline without its random crop, the frame resized to the
    short side of the test views at its aspect ratio."""
    test_resize = next(t for t in cfg.test_dataloader.dataset.pipeline
                       if t['type'] == 'Resize')
    pipeline = []
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'RandomResizedCrop':
            continue
        if step['type'] == 'Resize':
            if pipeline[-1]['type'] == 'Resize':
                continue  # the crop's resize: one resize is enough
            step = copy.deepcopy(test_resize)
        pipeline.append(step)
    cfg.train_dataloader.dataset.pipeline = pipeline


def token_grid(cfg) -> None:
    """Tokens on a grid of the frame's shape (:data:`TOKEN_GRID`); the
    image checkpoint's 4 x 4 grid is resampled to it on loading."""
    arch = cfg.model.backbone.arch
    cfg.model.backbone.arch = dict(arch, num_tokens=TOKEN_GRID[0] *
                                   TOKEN_GRID[1], token_grid=TOKEN_GRID)


def training_config(model: str, root: str, runs: str, epochs: int,
                    seed: int, quick: bool):
    """The training config of one of :data:`MODEL_NAMES`' 16:9 models."""
    cfg = run_config(CROPS_CFG if model == 'crops' else FULL_CFG,
                     osp.join(runs, f'{model}_seed{seed}'), epochs, seed,
                     quick)
    point_video_data(cfg, root)
    if model in ('whole', 'grid'):
        whole_frame_training(cfg)
    if model == 'grid':
        token_grid(cfg)
    return cfg


def protocol_config(protocol: str, root: str, checkpoint: str,
                    work_dir: str, quick: bool, model: str = None):
    """The test config of ``protocol`` on ``root``'s val clips:
    ``three-crop`` is the crops config's test pipeline, ``full-frame`` the
    full-frame config's, ``centre-crop`` the crops config's with one
    centre crop for its three (``model``: the trained model's name, for
    its arch)."""
    path = FULL_CFG if protocol == 'full-frame' else CROPS_CFG
    cfg = run_config(path, work_dir, 1, 0, quick)
    point_video_data(cfg, root)
    if model == 'grid':
        token_grid(cfg)
    cfg.model.backbone.pretrained = None
    cfg.load_from = checkpoint
    if protocol == 'centre-crop':
        pipeline = cfg.test_dataloader.dataset.pipeline
        for i, step in enumerate(pipeline):
            if step['type'] == 'ThreeCrop':
                pipeline[i] = dict(type='CenterCrop',
                                   crop_size=step['crop_size'])
    return cfg


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def view_shape(cfg) -> tuple:
    """``(views per video, T, H, W)`` of the test pipeline on the first
    test video."""
    from mmaction.registry import DATASETS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmaction'):
        dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    views, _, t, h, w = dataset[0]['inputs'].shape
    return int(views), int(t), int(h), int(w)


def gflops_per_view(cfg, t: int, h: int, w: int, cache: dict) -> float:
    """Full-count GFLOPs of one ``t x h x w`` view (all views of a protocol
    share one size here: each data set's clips have one size), per arch."""
    key = (t, h, w, json.dumps(cfg.model.backbone.arch, sort_keys=True))
    if key not in cache:
        from tools.analysis_tools.complexity import complexity
        from mmaction.registry import MODELS
        from mmengine.registry import DefaultScope
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.pretrained = None
        with DefaultScope.overwrite_default_scope('mmaction'):
            model = MODELS.build(model_cfg)
        cache[key] = complexity(model, [3, t, h, w])['full']
    return cache[key]


def test(cfg) -> tuple:
    """Run the test loop; ``(top-1 %, seconds in the loop, videos)``."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class _Clock(Hook):
        priority = 'VERY_LOW'

        def before_test_epoch(self, runner):
            self.start = time.perf_counter()

        def after_test_epoch(self, runner, metrics=None):
            self.seconds = time.perf_counter() - self.start

    runner = Runner.from_cfg(cfg)
    clock = _Clock()
    runner.register_hook(clock)
    metrics = runner.test()
    videos = len(runner.test_dataloader.dataset)
    return float(metrics['acc/top1']) * 100, clock.seconds, videos


def measure(model: str, checkpoint: str, data: str, root: str,
            runs: str, quick: bool, flops_cache: dict, seed=None) -> list:
    """The three protocols for one model (one seed of it) on one data
    set."""
    rows = []
    tag = model if seed is None else f'{model}_seed{seed}'
    for protocol in PROTOCOLS:
        cfg = protocol_config(protocol, root, checkpoint,
                              osp.join(runs, f'test_{tag}_{data}_'
                                       f'{protocol}'), quick, model)
        views, t, h, w = view_shape(cfg)
        per_view = gflops_per_view(cfg, t, h, w, flops_cache)
        top1, seconds, videos = test(cfg)
        rows.append(dict(model=model, seed=seed, data=data,
                         protocol=protocol, views=views, view=[t, h, w],
                         top1=round(top1, 2),
                         gflops_per_video=round(views * per_view, 4),
                         seconds_per_video=round(seconds / videos, 4),
                         videos=videos))
        print(f'{tag} on {data}, {protocol}: {views} views of '
              f'{t}x{h}x{w}, top-1 {top1:.2f} %, '
              f'{views * per_view:.3f} GFLOPs and '
              f'{seconds / videos * 1e3:.1f} ms per video', flush=True)
    return rows


def summarise(rows: list) -> list:
    """One row per model, data and protocol: the mean top-1 over seeds
    (and each seed's), the mean test time."""
    groups = {}
    for r in rows:
        groups.setdefault((r['model'], r['data'], r['protocol']),
                          []).append(r)
    out = []
    for (model, data, protocol), rs in groups.items():
        out.append(dict(
            model=model, data=data, protocol=protocol, views=rs[0]['views'],
            view=rs[0]['view'], videos=rs[0]['videos'],
            seeds=[r['seed'] for r in rs],
            top1_per_seed=[r['top1'] for r in rs],
            top1=round(sum(r['top1'] for r in rs) / len(rs), 2),
            gflops_per_video=rs[0]['gflops_per_video'],
            seconds_per_video=round(
                sum(r['seconds_per_video'] for r in rs) / len(rs), 4)))
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

MODEL_NAMES = {
    'crops': '16:9 clips, square crops (crops config)',
    'full': '16:9 clips, frame-shaped crops (full-frame config)',
    'whole': '16:9 clips, whole frames',
    'grid': '16:9 clips, whole frames, 28 tokens on a 7 x 4 grid',
    'demo': 'motion demo: whole 64x64 frames',
}
DATA_NAMES = {'motion_wide': '16:9, 128x72', 'motion': 'square, 64x64'}
PROTOCOL_NAMES = {'centre-crop': '4 clips x centre crop',
                  'three-crop': '4 clips x 3 crops',
                  'full-frame': '4 clips x full frame'}


def table(rows: list) -> str:
    """The markdown table of :func:`summarise`'s rows; cost also relative
    to three crops on the same model and data."""
    ref = {(r['model'], r['data']): r for r in rows
           if r['protocol'] == 'three-crop'}
    lines = ['| trained on | test clips | protocol | views per video | view '
             '(T x H x W) | top-1 (%) | GFLOPs per video | test ms per video '
             '| GFLOPs / time vs 3 crops |',
             '| :-- | :-- | :-- | :-: | :-: | :-: | :-: | :-: | :-: |']
    for r in rows:
        base = ref[(r['model'], r['data'])]
        top1 = f"{r['top1']:.2f}"
        if len(r['top1_per_seed']) > 1:
            top1 += ' (' + ', '.join(f'{v:.1f}' for v in r['top1_per_seed'])\
                + ')'
        lines.append(
            f"| {MODEL_NAMES[r['model']]} | {DATA_NAMES[r['data']]} | "
            f"{PROTOCOL_NAMES[r['protocol']]} | {r['views']} | "
            f"{'x'.join(map(str, r['view']))} | {top1} | "
            f"{r['gflops_per_video']:.3f} | "
            f"{r['seconds_per_video'] * 1e3:.1f} | "
            f"{r['gflops_per_video'] / base['gflops_per_video']:.2f} / "
            f"{r['seconds_per_video'] / base['seconds_per_video']:.2f} |")
    return '\n'.join(lines)


def acceptance(rows: list) -> dict:
    """On the 16:9 clips, each protocol with the training made for it:
    each full-frame training (``full``, ``whole``, ``grid``) on full frames
    vs the crops config's model on three crops; top-1 (mean over seeds;
    matches or beats) and GFLOPs (lower). ``best``: the most accurate full
    frame among those cheaper than three crops."""
    by = {(r['model'], r['protocol']): r for r in rows
          if r['data'] == 'motion_wide'}
    crops = by[('crops', 'three-crop')]
    out = dict(three_crop_top1=crops['top1'], full_frame={})
    for model in ('full', 'whole', 'grid'):
        full = by[(model, 'full-frame')]
        ratio = full['gflops_per_video'] / crops['gflops_per_video']
        out['full_frame'][model] = dict(
            top1=full['top1'], gflops_ratio=round(ratio, 3),
            passes=bool(full['top1'] >= crops['top1'] and ratio < 1))
    cheaper = {m: v for m, v in out['full_frame'].items()
               if v['gflops_ratio'] < 1}
    out['best'] = max(cheaper, key=lambda m: cheaper[m]['top1'])
    out['passes'] = out['full_frame'][out['best']]['passes']
    return out


def write_doc(path: str, text: str) -> None:
    with open(path) as f:
        doc = f.read()
    head, rest = doc.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    with open(path, 'w') as f:
        f.write(f'{head}{TABLE_BEGIN}\n{text}\n{TABLE_END}{tail}')


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, osp.abspath(args.out), args.doc, ' '.join(
            [osp.relpath(__file__, REPO)] +
            (argv if argv is not None else sys.argv[1:])))
    out, data_root = start_run(args)
    runs = osp.join(out, 'work_dirs')
    epochs = 1 if args.quick else args.epochs
    timing = Laps()
    roots = make_data(data_root, args.quick)
    timing.lap('data')

    # the image checkpoint both video models start from
    image_ckpt = make_demo_checkpoint(
        args.image_checkpoint or ('none' if args.quick else None),
        'work_dirs/demo_image')
    if image_ckpt is None and args.image_checkpoint != 'none' \
            and not args.quick:
        shapes = make_shapes(osp.join(data_root, 'shapes'))
        cfg = run_config(IMAGE_CFG, osp.join(runs, 'image'), None,
                         args.seed, False)
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.data_root = shapes
        image_ckpt = train(cfg)
        timing.lap('train_image')

    seeds = list(range(args.seed, args.seed + args.seeds))
    wide_ckpts = {}
    for seed in seeds:
        for model in WIDE_MODELS:
            cfg = training_config(model, roots['motion_wide'], runs, epochs,
                                  seed, args.quick)
            cfg.model.backbone.pretrained = image_ckpt
            wide_ckpts[(model, seed)] = train(cfg)
            timing.lap(f'train_{model}_seed{seed}')

    # --quick trains a throw-away demo model rather than read make demo's
    demo_ckpt = (args.demo_checkpoint and osp.abspath(args.demo_checkpoint)
                 ) if args.quick else make_demo_checkpoint(
        args.demo_checkpoint, 'work_dirs/demo_video')
    demo_trained_here = demo_ckpt is None
    if demo_trained_here:
        cfg = run_config(DEMO_CFG, osp.join(runs, 'demo'), epochs, args.seed,
                         args.quick)
        point_video_data(cfg, roots['motion'])
        cfg.model.backbone.pretrained = image_ckpt
        demo_ckpt = train(cfg)
        timing.lap('train_demo')

    flops_cache, per_run = {}, []
    for (model, seed), ckpt in wide_ckpts.items():
        per_run += measure(model, ckpt, 'motion_wide', roots['motion_wide'],
                           runs, args.quick, flops_cache, seed)
        timing.lap(f'test_{model}_seed{seed}')
    # the demo model on its clips, and on 16:9 ones (not with --quick)
    for data in ('motion',) if args.quick else ('motion', 'motion_wide'):
        per_run += measure('demo', demo_ckpt, data, roots[data], runs,
                           args.quick, flops_cache)
        timing.lap(f'test_demo_{data}')
    timing.lap('total', since_start=True)
    results = dict(
        command=' '.join([osp.relpath(__file__, REPO)] +
                         (argv if argv is not None else sys.argv[1:])),
        settings=dict(epochs=epochs, seed=args.seed, threads=args.threads,
                      seeds=seeds, quick=args.quick, data_root=data_root,
                      wide_size=list(WIDE_SIZE),
                      image_checkpoint=image_ckpt,
                      demo_checkpoint=demo_ckpt,
                      demo_trained_here=demo_trained_here,
                      crops_config=osp.relpath(CROPS_CFG, REPO),
                      full_frame_config=osp.relpath(FULL_CFG, REPO)),
        checkpoints={f'{m}_seed{sd}': c for (m, sd), c in wide_ckpts.items()},
        per_run=per_run, timing_s=timing)
    return report(results, out, args.doc)


def merge(paths: list, out: str, doc, command: str) -> dict:
    """One report from several runs' ``results.json`` (e.g. one seed per
    process, run side by side): their per-seed rows together, the demo
    model's from the first run."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    per_run, seen = [], set()
    for run in runs:
        for r in run['per_run']:
            key = (r['model'], r['seed'], r['data'], r['protocol'])
            if r['seed'] is None and key in seen:
                continue  # the demo model, tested by every run
            if key in seen:
                raise ValueError(f'{key} is in more than one of {paths}: '
                                 'merge runs of different seeds')
            seen.add(key)
            per_run.append(r)
    settings = dict(runs[0]['settings'], merged=list(paths),
                    seeds=sorted(s for run in runs
                                 for s in run['settings']['seeds']))
    settings.pop('seed', None)
    results = dict(
        command=command, settings=settings,
        checkpoints={k: v for run in runs
                     for k, v in run['checkpoints'].items()},
        per_run=per_run, timing_s=[run['timing_s'] for run in runs])
    os.makedirs(out, exist_ok=True)
    return report(results, out, doc)


def report(results: dict, out: str, doc) -> dict:
    """Summarise ``results['per_run']``; write ``OUT/results.json``,
    ``OUT/table.md`` and the table in ``doc``; print them."""
    rows = summarise(results['per_run'])
    text = table(rows)
    results = dict(results, rows=rows, acceptance=acceptance(rows))
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    with open(osp.join(out, 'table.md'), 'w') as f:
        f.write(text + '\n')
    if doc:
        write_doc(doc, text)
    print(text)
    acc = results['acceptance']
    for model, v in acc['full_frame'].items():
        print(f'{MODEL_NAMES[model]}, on full frames vs the '
              f"crops config on 3 crops: top-1 {v['top1']} vs "
              f"{acc['three_crop_top1']} %, GFLOPs x{v['gflops_ratio']}: "
              f"{'PASS' if v['passes'] else 'FAIL'}")
    print(f'wrote {osp.join(out, "results.json")} and '
          f'{osp.join(out, "table.md")}' +
          (f' and the table in {doc}' if doc else ''))
    return results

if __name__ == '__main__':
    main()
