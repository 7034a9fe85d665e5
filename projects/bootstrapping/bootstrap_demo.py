"""Bootstrapping a SparseFormer from a ViT without labels, on a CPU.

The idea of "Bootstrapping SparseFormers from Vision Foundation Models"
(Gao et al., CVPR 2024) at demo scale, on the embedded synthetic data
(``make demo-bootstrap``):

1. a small hybrid ViT (the "foundation model": timm's R+ViT layout,
   ``configs/vit-hybrid-nano_1xb32-8e_shapes.py``) is trained with labels
   on the shapes images;
2. ``tools/model_converters/vit_to_sparseformer.py`` turns its checkpoint
   into a bootstrapped SparseFormer's initial weights (its blocks 2-5,
   final norm, head and class token; the focusing layers from scratch);
3. the SparseFormer learns the ViT's final representation without labels
   (``configs/bootstrap_sparseformer-btsp-nano_vit-hybrid-nano-teacher_
   1xb32-4e_shapes.py``); its top-1 goes through the teacher's own head;
4. a first-paper (v1) SparseFormer of the same size is trained with labels
   for the same wall time as step 3 (the image demo's recipe, stopped when
   the time is up);
5. the bootstrapped model is inflated to tubes and fine-tuned on the motion
   clips (``configs/videosparseformer-btsp-nano_shapes-btsp-pre_1xb16-
   4x8x1-6e_motion.py``).

The configs are this project's (``projects/bootstrapping/configs``); the
labelled v1 run trains the image demo's ``configs/demo`` config.

Writes ``OUT/results.json`` (curves, wall times, top-1), ``OUT/curves.png``
and ``OUT/summary.md`` (the table of docs/experiments.md); runs and
checkpoints under ``OUT/``.

Example (from the repository root, as a module):
    python -m projects.bootstrapping.bootstrap_demo \
        --out work_dirs/demo_bootstrap
    # the plumbing on a few samples, 1 epoch each (about a minute):
    python -m projects.bootstrapping.bootstrap_demo --out /tmp/b --quick
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

from projects.focus_and_pretraining.experiment_utils import (
    REPO, last_checkpoint, make_motion, make_shapes, start_run)
from projects.focus_and_pretraining.focus_and_pretraining import (
    run_config, video_config)

CONFIGS = osp.join(REPO, 'projects', 'bootstrapping', 'configs')
TEACHER_CFG = osp.join(CONFIGS, 'vit-hybrid-nano_1xb32-8e_shapes.py')
BOOTSTRAP_CFG = osp.join(
    CONFIGS, 'bootstrap_sparseformer-btsp-nano_vit-hybrid-nano-teacher_1xb32-'
    '4e_shapes.py')
V1_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-8e_shapes.py')
VIDEO_CFG = osp.join(
    CONFIGS, 'videosparseformer-btsp-nano_shapes-btsp-pre_1xb16-4x8x1-6e_'
    'motion.py')
CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'vit_to_sparseformer.py')
# The student's shape, as the converter is told (the bootstrap config's arch
# is what it builds from the demo ViT with these options).
CONVERTER_OPTIONS = ['--num-tokens', '16', '--focus-dims', '64',
                     '--source-heads', '3']
# A v1 SparseFormer the student's size: 16 tokens, focusing width 64, four
# 96-wide cortex blocks (the student has four inherited 96-wide blocks).
V1_ARCH = dict(num_tokens=16, focus_dims=64, cortex_dims=96, cortex_depth=4,
               num_points=16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/demo_bootstrap',
                        help='output folder (results, curves, runs)')
    parser.add_argument('--data-root', default=None,
                        help='where shapes/ and motion/ live or are made '
                        '(default: data/demo; OUT/data with --quick)')
    parser.add_argument('--teacher-epochs', type=int, default=8)
    parser.add_argument('--bootstrap-epochs', type=int, default=4)
    parser.add_argument('--video-epochs', type=int, default=6)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch intra-op threads (default: torch's); 1 "
                        'on a CPU shared with other jobs')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data and 1 epoch per run: checks the '
                        'plumbing, not the science')
    return parser.parse_args(argv)


def make_data(data_root: str, quick: bool) -> dict:
    """``shapes`` and ``motion`` as ``make demo`` makes them, where missing."""
    return dict(
        shapes=make_shapes(osp.join(data_root, 'shapes'),
                           *((4, 2) if quick else (1000, 100))),
        motion=make_motion(osp.join(data_root, 'motion'),
                           *((2, 1) if quick else (150, 30))))


def _inner(dataset):
    """The dataset config under a ``SkipBadSamples`` wrapper, nested or
    flat (the wrapped type by name, its arguments beside it)."""
    inner = dataset.get('dataset')
    return inner if isinstance(inner, dict) else dataset


def _image_data(cfg, root: str) -> None:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _inner(cfg[loader].dataset).data_root = root


def val_clock_hook():
    """A hook that records (training seconds so far, epoch, metrics) at
    every validation: the curves against wall time. Registered under
    ``ValClockHook`` (the Runner prints its config, so the type is a
    name)."""
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    @HOOKS.register_module(name='ValClockHook', force=True)
    class ValClockHook(Hook):
        priority = 'VERY_LOW'

        def __init__(self):
            self.start, self.points = None, []

        def before_train(self, runner):
            self.start = time.time()

        def after_val_epoch(self, runner, metrics=None):
            if self.start is not None:
                self.points.append([round(time.time() - self.start, 1),
                                    runner.epoch, dict(metrics or {})])

    return ValClockHook


def train(cfg, key: str, scale: float = 1.0) -> dict:
    """Train ``cfg`` with mmengine's Runner; its last checkpoint, training
    seconds, iterations and validation curve ``[[seconds, epoch, top-1 %],
    ...]`` (metric ``key`` times ``scale``)."""
    from mmengine.runner import Runner
    clock = val_clock_hook()
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ValClockHook')]
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    seconds = time.time() - start
    checkpoint = last_checkpoint(cfg.work_dir)
    points = next(h for h in runner.hooks if isinstance(h, clock)).points
    curve = [[t, epoch, round(m[key] * scale, 2)] for t, epoch, m in points
             if key in m]
    return dict(checkpoint=checkpoint, seconds=round(seconds, 1),
                iters=runner.iter, epochs=runner.epoch, val_acc=curve,
                final_acc=curve[-1][2])


def step_seconds(cfg, steps: int = 6) -> float:
    """Seconds per training iteration of ``cfg``'s model on a batch of its
    size (random input of the shapes images' size; after one warm-up
    step)."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    model = MODELS.build(cfg.model)
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    n = cfg.train_dataloader.batch_size
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64),
                                      dtype=torch.uint8) for _ in range(n)],
                data_samples=[DataSample().set_gt_label(i % 4)
                              for i in range(n)])
    model.train_step(data, wrapper)
    start = time.time()
    for _ in range(steps):
        model.train_step(data, wrapper)
    return (time.time() - start) / steps


def run_teacher(args, roots, out) -> dict:
    cfg = run_config(TEACHER_CFG, osp.join(out, 'teacher'), 'teacher',
                      args.teacher_epochs, args.seed, args.quick)
    _image_data(cfg, roots['shapes'])
    return train(cfg, 'accuracy/top1')


def convert_teacher(teacher_ckpt: str, dst: str) -> None:
    """The student's initial weights, by the converter as a user runs it."""
    cmd = [sys.executable, CONVERTER, teacher_ckpt, dst] + CONVERTER_OPTIONS
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-3000:]}')


def run_bootstrap(args, roots, out, teacher_ckpt, init) -> dict:
    cfg = run_config(BOOTSTRAP_CFG, osp.join(out, 'bootstrap'),
                      'bootstrap', args.bootstrap_epochs, args.seed,
                      args.quick)
    _image_data(cfg, roots['shapes'])
    cfg.model.teacher_checkpoint = teacher_ckpt
    cfg.model.student.init_cfg.checkpoint = init
    return train(cfg, 'accuracy/top1')


def run_v1(args, roots, out, seconds: float) -> dict:
    """The labelled v1 SparseFormer for about ``seconds`` of training: as
    many epochs of the image demo's recipe (1 warm-up epoch, a flat
    learning rate, a cosine over the last quarter) as its measured step
    time fits in ``seconds``."""
    import math

    def v1_config(epochs):
        cfg = run_config(V1_CFG, osp.join(out, 'v1_labelled'),
                          'v1_labelled', epochs, args.seed, args.quick)
        _image_data(cfg, roots['shapes'])
        cfg.model.backbone.arch = V1_ARCH
        cfg.model.neck.in_channels = cfg.model.head.in_channels = 96
        return cfg

    cfg = v1_config(1)
    iters = math.ceil(len_train(cfg) / cfg.train_dataloader.batch_size)
    per_epoch = step_seconds(cfg) * iters
    epochs = max(1, round(seconds / per_epoch))
    cfg = v1_config(epochs)
    if epochs > 1:
        warmup, cosine = cfg.param_scheduler
        cosine.begin = max(1, epochs - max(1, epochs // 4))
        cosine.end = epochs
    run = train(cfg, 'accuracy/top1')
    run.update(planned_epochs=epochs,
               estimated_epoch_seconds=round(per_epoch, 1))
    return run


def len_train(cfg) -> int:
    """Training images in ``cfg``'s class folders."""
    dataset = _inner(cfg.train_dataloader.dataset)
    root = osp.join(dataset.data_root, dataset.data_prefix)
    return sum(len(files) for _, _, files in os.walk(root))


def run_video(args, roots, out, pretrained: str) -> dict:
    cfg = video_config(roots['motion'], osp.join(out, 'video'),
                       args.video_epochs, args.seed, pretrained, args.quick,
                       'video_bootstrapped', VIDEO_CFG)
    return train(cfg, 'acc/top1', 100.0)


def plot_curves(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (('teacher', 'ViT teacher (labels)'),
                       ('bootstrap', 'bootstrapped SparseFormer (no labels)'),
                       ('v1', 'v1 SparseFormer (labels, same time)')):
        curve = results[key]['val_acc']
        left.plot([t / 60 for t, _, _ in curve], [a for _, _, a in curve],
                  marker='o', label=label)
    left.set_xlabel('training wall time (min)')
    left.set_ylabel('shapes val top-1 (%)')
    left.legend(fontsize=8)
    video = results['video']['val_acc']
    right.plot([e for _, e, _ in video], [a for _, _, a in video],
               marker='o', label='bootstrapped, inflated to tubes')
    right.set_xlabel('epoch')
    right.set_ylabel('motion val top-1 (%)')
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_table(results: dict) -> str:
    t, b, v = results['teacher'], results['bootstrap'], results['v1']
    rows = [
        ('ViT teacher, labels', t['final_acc'], t['seconds'],
         f"{t['epochs']} epochs"),
        ('bootstrapped SparseFormer, no labels (teacher\'s head)',
         b['final_acc'], b['seconds'], f"{b['epochs']} epochs"),
        ('v1 SparseFormer of the same size, labels, same wall time',
         v['final_acc'], v['seconds'], f"{v['epochs']} epochs"),
    ]
    lines = ['| model | shapes val top-1 (%) | training (s) | schedule |',
             '|---|---:|---:|---|']
    lines += [f'| {name} | {acc:.2f} | {sec:.0f} | {sched} |'
              for name, acc, sec, sched in rows]
    ratio = b['final_acc'] / max(t['final_acc'], 1e-9)
    video = results['video']
    lines += ['', f'Student / teacher top-1: {100 * ratio:.1f} %. '
              f"Inflated to video, fine-tuned {video['epochs']} "
              f"epochs on motion: {video['final_acc']:.2f} % val top-1 "
              f"({video['seconds']:.0f} s)."]
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    out, data_root = start_run(args)
    import torch
    if args.quick:
        args.teacher_epochs = args.bootstrap_epochs = args.video_epochs = 1
    roots = make_data(data_root, args.quick)
    results = dict(seed=args.seed, threads=torch.get_num_threads())

    results['teacher'] = run_teacher(args, roots, out)
    teacher = osp.join(out, 'teacher.pth')
    shutil.copyfile(results['teacher']['checkpoint'], teacher)
    init = osp.join(out, 'student_init.pth')
    convert_teacher(teacher, init)
    results['bootstrap'] = run_bootstrap(args, roots, out, teacher, init)
    results['v1'] = run_v1(args, roots, out, results['bootstrap']['seconds'])
    results['video'] = run_video(args, roots, out,
                                 results['bootstrap']['checkpoint'])

    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    plot_curves(results, osp.join(out, 'curves.png'))
    table = summary_table(results)
    with open(osp.join(out, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    print(table)
    print(f'results, curves and runs in {out}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
