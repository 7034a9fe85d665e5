"""Does SparseFormer learn where to look, and what does image pretraining buy?

One reproducible CPU experiment on the embedded synthetic data:

1. generate ``shapes``, ``shapes_small`` and ``shapes_tiny`` (images of
   objects of half-size 8-12, 5-8 and 4-6 px) and ``motion`` (mp4 clips)
   if missing;
2. train the image demo model (``configs/demo/sparseformer-nano_1xb32-6e_
   shapes.py``), then fine-tune it on ``shapes_small``, shapes the size of
   the video's moving objects (``configs/sparseformer-nano_shapes-pre_
   1xb32-6e_shapes-small.py`` of this project), then on ``shapes_tiny``
   (``configs/sparseformer-nano_shapes-small-pre_1xb32-6e_shapes-tiny.py``);
   each stage starts from the last one's checkpoint, and
   ``--small-epochs 0`` / ``--tiny-epochs 0`` skip a stage;
3. train the video demo model with its frames sampled 2 apart and one tube
   per image token (``configs/videosparseformer-nano-r1_shapes-pre_
   1xb16-4x2x1-6e_motion.py``) from the last image checkpoint, inflated,
   and from scratch, with the same seeds and number of steps; each with
   ``--video-seeds`` seeds (3: one video run's focus varies by about 0.4x
   from seed to seed, so the focus check takes their mean), and
   ``--video-config`` takes another config, e.g. the video demo's own
   4x8x1 one;
4. measure the foreground-focus metric (``focus.py`` beside this driver)
   at initialisation and after training, for every image stage and both
   video runs, on the validation sets;
5. write ``OUT/results.json``, ``OUT/val_accuracy.png`` (validation accuracy
   per epoch), RoI/tube pictures of one validation sample at init and after
   training (``OUT/pictures``, drawn by ``sparseformer_mm.visualization``)
   and the logs and checkpoints under ``OUT/work_dirs``.

Example (from the repository root, as a module):
    python -m projects.focus_and_pretraining.focus_and_pretraining \
        --out work_dirs/exp_focus
    # a tiny smoke run (a few samples, 1 epoch each): about a minute
    python -m projects.focus_and_pretraining.focus_and_pretraining \
        --out /tmp/q --quick
"""
import argparse
import glob
import json
import os.path as osp
import sys

from projects.focus_and_pretraining.experiment_utils import (
    REPO, Laps, fit_cosine, make_motion, make_shapes, point_video_data,
    start_run, train)

CONFIGS = osp.join(REPO, 'projects', 'focus_and_pretraining', 'configs')
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
SMALL_CFG = osp.join(CONFIGS,
                     'sparseformer-nano_shapes-pre_1xb32-6e_shapes-small.py')
TINY_CFG = osp.join(
    CONFIGS, 'sparseformer-nano_shapes-small-pre_1xb32-6e_shapes-tiny.py')
VIDEO_CFG = osp.join(
    CONFIGS, 'videosparseformer-nano-r1_shapes-pre_1xb16-4x2x1-6e_motion.py')
# The image stages, in order: (results key, data set, config, the argument
# that sets its epochs). Each fine-tunes the previous stage's checkpoint.
IMAGE_STAGES = (('image', 'shapes', IMAGE_CFG, 'image_epochs'),
                ('image_small', 'shapes_small', SMALL_CFG, 'small_epochs'),
                ('image_tiny', 'shapes_tiny', TINY_CFG, 'tiny_epochs'))
# Acceptance bar of the focus check: points on the object >= 3x chance.
FOCUS_BAR = 3.0
# half-size ranges (px, at 64 x 64) of the objects of ``shapes_small``
# (the motion clips' moving object: ``motion_object_radius(64)`` of
# tools/data/synthetic_videos.py) and of ``shapes_tiny``
SMALL_RADIUS = (5, 8)
TINY_RADIUS = (4, 6)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/exp_focus_pretraining',
                        help='output folder (results.json, curves, runs)')
    parser.add_argument('--data-root', default=None,
                        help='where shapes/ and motion/ live or are made '
                        '(default: data/demo; OUT/data with --quick)')
    parser.add_argument('--image-epochs', type=int, default=6)
    parser.add_argument('--small-epochs', type=int, default=6,
                        help='epochs on shapes_small after the image demo '
                        '(0: skip this stage)')
    parser.add_argument('--tiny-epochs', type=int, default=6,
                        help='epochs on shapes_tiny after the previous '
                        'stage (0: skip; the video then starts from the '
                        'last stage run)')
    parser.add_argument('--video-config', default=VIDEO_CFG,
                        help='the video config, trained from the image '
                        'weights and from scratch (default: the video demo '
                        'model with frames 2 apart and one tube per image '
                        'token)')
    parser.add_argument('--video-epochs', type=int, default=6)
    parser.add_argument('--video-seeds', type=int, default=3,
                        help='train each video run with this many seeds '
                        '(SEED, SEED+1, ...); the focus check uses their '
                        'mean, since one video run varies by +-0.4x '
                        '(2 with --quick)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (default: torch\'s). '
                        'On a CPU shared with other jobs use 1: spinning '
                        'OpenMP threads then cost several times the work')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data and 1 epoch per run: checks the '
                        'plumbing, not the science')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# Data and configs
# ---------------------------------------------------------------------------


def make_data(data_root: str, quick: bool) -> dict:
    """Generate the data sets where missing (``shapes`` and ``motion`` as
    make demo does; ``shapes_small`` with the motion clips' object size,
    ``shapes_tiny`` with smaller objects still)."""
    roots = {name: osp.join(data_root, name)
             for name in ('shapes', 'shapes_small', 'shapes_tiny', 'motion')}
    # the data tools' defaults, fewer samples with quick
    n = (4, 2) if quick else (1000, 100)
    for name, radius in (('shapes', None), ('shapes_small', SMALL_RADIUS),
                         ('shapes_tiny', TINY_RADIUS)):
        make_shapes(roots[name], *n, radius=radius)
    make_motion(roots['motion'], *((2, 1) if quick else (150, 30)))
    return roots


def _schedule(cfg, epochs: int, t_max: bool = False) -> None:
    fit_cosine(cfg, epochs, t_max)
    cfg.train_cfg.val_interval = 1
    # keep only the last checkpoint; its path is in work_dir/last_checkpoint
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=epochs, max_keep_ckpts=1)


def run_config(path: str, work_dir: str, name: str, epochs: int, seed: int,
                quick: bool, t_max: bool = False):
    """``path`` set up as one run of the experiment: its schedule cut to
    ``epochs``, work dir, seed and name (tiny loaders with ``quick``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    _schedule(cfg, epochs, t_max)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    cfg.experiment_name = name
    if quick:
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
            cfg[loader].batch_size = 4
    return cfg


def image_config(root: str, work_dir: str, epochs: int, seed: int,
                 quick: bool, path: str, name: str, load_from: str = None):
    cfg = run_config(path, work_dir, name, epochs, seed, quick)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    cfg.load_from = load_from
    return cfg


def video_config(root: str, work_dir: str, epochs: int, seed: int,
                 pretrained, quick: bool, name: str, path: str):
    cfg = run_config(path, work_dir, name, epochs, seed, quick, t_max=True)
    point_video_data(cfg, root)
    cfg.model.backbone.pretrained = pretrained
    cfg.train_cfg.val_begin = 1
    return cfg


# ---------------------------------------------------------------------------
# Training, logs and focus
# ---------------------------------------------------------------------------


def train_and_measure(cfg, seed: int, pictures: str, tag: str, **run) -> dict:
    """Train ``cfg``; return ``run`` updated with its validation curve,
    checkpoint, final accuracy and trained focus (pictures ``{tag}_trained``).
    """
    checkpoint = train(cfg)
    image = cfg.get('default_scope') == 'mmpretrain'
    curve = val_curve(cfg.work_dir, 'accuracy/top1' if image else 'acc/top1',
                      1.0 if image else 100.0)
    run.update(val_acc=curve, final_acc=curve[-1][1], checkpoint=checkpoint,
               focus_trained=focus(cfg, checkpoint, seed, pictures,
                                   f'{tag}_trained'))
    return run


def val_curve(work_dir: str, key: str, scale: float) -> list:
    """``[[epoch, top-1 %], ...]`` from the run's ``vis_data/scalars.json``
    (mmengine writes validation scalars with ``step`` = epoch)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not paths:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')
    curve = []
    with open(paths[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                curve.append([int(rec['step']), float(rec[key]) * scale])
    return curve


def focus(cfg, checkpoint, seed: int, pictures: str = None,
          tag: str = '') -> dict:
    """The focus metric of ``checkpoint`` (None: fresh weights, or for a
    video config with ``pretrained`` the inflated image weights) on the
    config's validation set; with ``pictures``, also the RoI/tube pictures
    of validation sample 0 there (files ``{tag}_*``)."""
    from projects.focus_and_pretraining.focus import (
        build_model_and_dataset, evaluate_focus, format_focus_table,
        load_box_annotations)
    model, dataset = build_model_and_dataset(cfg, checkpoint, 'val',
                                             init_seed=seed)
    summary = evaluate_focus(model, dataset, load_box_annotations('auto'),
                             batch_size=32)
    print(format_focus_table(summary, f'focus: {cfg.experiment_name}, '
                             f'{checkpoint or "initial weights"}'),
          flush=True)
    if pictures:
        from sparseformer_mm.visualization import (trace_model_input,
                                                   visualize_trace)
        trace, display = trace_model_input(model, dataset[0])
        summary['pictures'] = [
            osp.relpath(p, osp.dirname(pictures))
            for p in visualize_trace(display, trace, pictures, tag)]
    return summary


def plot_curves(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    done = 0  # each stage's epochs continue the previous stage's
    colors = ('tab:green', 'tab:olive', 'tab:brown')
    for i, key in enumerate(results['image_stages']):
        curve = [[e + done, a] for e, a in results[key]['val_acc']]
        data = results[key]['data']
        axes[0].plot(*zip(*curve), 'o-', color=colors[i % len(colors)],
                     label=data if i == 0 else f'then {data}')
        done = curve[-1][0]
    axes[0].legend(loc='lower right')
    axes[0].set_title('image pretraining')
    for name, color in (('pretrained', 'tab:blue'), ('scratch', 'tab:red')):
        for i, run in enumerate(results['video'][name]['seeds']):
            axes[1].plot(*zip(*run['val_acc']), 'o-' if i == 0 else '.--',
                         color=color, alpha=1 if i == 0 else 0.5,
                         label=(f'{name}, seed {run["seed"]} '
                                f'({run["final_acc"]:.1f} %)'))
    axes[1].set_title('video fine-tuning (motion)')
    axes[1].legend(loc='lower right')
    for ax in axes:
        ax.axhline(25, color='gray', ls=':', lw=1)  # chance: 4 classes
        ax.set_xlabel('epoch')
        ax.set_ylabel('val top-1 (%)')
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _lift(summary: dict) -> float:
    return round(summary['last_pass']['points_lift'], 3)


def main(argv=None):
    args = parse_args(argv)
    out, data_root = start_run(args)
    if args.quick:
        args.image_epochs = args.video_epochs = 1
        args.small_epochs = min(args.small_epochs, 1)
        args.tiny_epochs = min(args.tiny_epochs, 1)
        args.video_seeds = min(args.video_seeds, 2)
    timing = Laps()
    roots = make_data(data_root, args.quick)
    timing.lap('data')

    runs = osp.join(out, 'work_dirs')
    pics = osp.join(out, 'pictures')
    stages, last_image_ckpt = {}, None
    for key, data, path, epochs in IMAGE_STAGES:
        epochs = getattr(args, epochs)
        if key != 'image' and epochs <= 0:
            continue
        cfg = image_config(roots[data], osp.join(runs, key), epochs,
                           args.seed, args.quick, path, key,
                           load_from=last_image_ckpt)
        # focus on this stage's data: fresh weights, and (after the first
        # stage) the checkpoint it starts from
        run = dict(data=data, focus_init=focus(cfg, None, args.seed, pics,
                                               f'{key}_init'))
        if last_image_ckpt:
            run.update(load_from=last_image_ckpt,
                       focus_start=focus(cfg, last_image_ckpt, args.seed))
        stages[key] = train_and_measure(cfg, args.seed, pics, key, **run)
        last_image_ckpt = stages[key]['checkpoint']
        timing.lap(key)

    video = {}
    seeds = range(args.seed, args.seed + max(1, args.video_seeds))
    for name, pretrained in (('pretrained', last_image_ckpt),
                             ('scratch', None)):
        for seed in seeds:
            # the first seed's run is the one drawn and plotted in full
            first = seed == args.seed
            tag = f'video_{name}' + ('' if first else f'_seed{seed}')
            run_pics = pics if first else None
            vcfg = video_config(roots['motion'], osp.join(runs, tag),
                                args.video_epochs, seed, pretrained,
                                args.quick, tag, args.video_config)
            # at init: random weights, or the inflated image weights
            run = train_and_measure(
                vcfg, seed, run_pics, tag, pretrained=pretrained,
                focus_init=focus(vcfg, None, seed, run_pics, f'{tag}_init'))
            if first:
                video[name] = dict(run, seeds=[])
            video[name]['seeds'].append(
                dict(seed=seed, lift_init=_lift(run['focus_init']),
                     lift_trained=_lift(run['focus_trained']),
                     **{k: run[k] for k in ('val_acc', 'final_acc',
                                            'checkpoint')}))
            timing.lap(tag)

    results = dict(
        command=' '.join([osp.relpath(__file__, REPO)] + (argv or
                                                          sys.argv[1:])),
        settings=dict(image_epochs=args.image_epochs, threads=args.threads,
                      small_epochs=args.small_epochs,
                      tiny_epochs=args.tiny_epochs,
                      video_epochs=args.video_epochs, seed=args.seed,
                      video_seeds=list(seeds),
                      quick=args.quick, data_root=data_root,
                      image_config=osp.relpath(IMAGE_CFG, REPO),
                      small_config=osp.relpath(SMALL_CFG, REPO),
                      tiny_config=osp.relpath(TINY_CFG, REPO),
                      video_config=osp.relpath(
                          osp.abspath(args.video_config), REPO)),
        image_stages=list(stages), **stages, video=video)
    trained = dict(stages, video_pretrained=video['pretrained'],
                   video_scratch=video['scratch'])
    # the focus check: last sampling pass, points on the object vs chance
    results['acceptance'] = dict(
        bar=FOCUS_BAR,
        definition='last sampling pass: (mean fraction of points inside the '
        "object's box) / (mean box share of the frame), validation set")
    for key, run in trained.items():
        lifts = {stage: _lift(run[f'focus_{stage}'])
                 for stage in ('init', 'start', 'trained')
                 if f'focus_{stage}' in run}
        if 'seeds' in run:  # video: the mean over its seeds
            lifts['per_seed'] = [r['lift_trained'] for r in run['seeds']]
            lifts['trained'] = round(
                sum(lifts['per_seed']) / len(lifts['per_seed']), 3)
            lifts['seeds_passing'] = sum(v >= FOCUS_BAR
                                         for v in lifts['per_seed'])
        lifts['passes'] = lifts['trained'] >= FOCUS_BAR
        results['acceptance'][key] = lifts
    # validation sample 0 of each set, at init and after training
    results['pictures'] = sorted(
        p for run in trained.values()
        for key in ('focus_init', 'focus_trained')
        for p in run[key].pop('pictures', []))
    plot_curves(results, osp.join(out, 'val_accuracy.png'))
    timing.lap('total', since_start=True)
    results['timing_s'] = timing
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    print(summary_text(results))
    print(f'wrote {osp.join(out, "results.json")} and '
          f'{osp.join(out, "val_accuracy.png")}')
    return results


def summary_text(results: dict) -> str:
    vid, acc = results['video'], results['acceptance']
    lines = [f"{key} ({results[key]['data']}): final val top-1 "
             f"{results[key]['final_acc']:.2f} %"
             for key in results['image_stages']]
    for name, what in (('pretrained', 'from inflated image weights'),
                       ('scratch', 'from scratch (same seeds and steps)')):
        lines.append(f'video {what}: ' + ', '.join(
            f"{r['final_acc']:.2f} % (seed {r['seed']})"
            for r in vid[name]['seeds']))
    lines.append('focus lift (points on the object / chance, last pass), '
                 f'init -> trained (bar {acc["bar"]}x):')
    for key, a in acc.items():
        if not isinstance(a, dict):  # bar, definition
            continue
        seeds = ''
        if 'per_seed' in a:
            seeds = (' (mean of ' + ', '.join(f'{v:.2f}x' for v in
                                              a['per_seed'])
                     + f"; {a['seeds_passing']} of {len(a['per_seed'])} "
                     'runs pass)')
        lines.append(f"  {key:<17} {a['init']:.2f}x -> {a['trained']:.2f}x"
                     f"  {'PASS' if a['passes'] else 'below bar'}{seeds}")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
