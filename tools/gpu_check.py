"""One check of what only a GPU runs (``make gpu-check``).

With a CUDA GPU (under 8 minutes):

* the benchmark's GPU group: images/s, clips/s and memory of SparseFormer-T
  and VideoSparseFormer-T against Swin-T and Video Swin-T, in fp32, fp16
  and bf16 (``projects/benchmarks/benchmark.py``);
* ``torch.compile`` against eager for our two models (the same benchmark);
* a 50-iteration AMP training of the K400 tiny config (``configs/k400.py``)
  on generated clips, fp16 and bf16: the loss finite and falling;
* a one-GPU ``tools/dist_train.sh`` (NCCL) of the video demo config;
* the 5-D ``grid_sample`` (forward and backward) in fp16 against fp32.

Without a GPU it says so in one line and runs the CPU mixed-precision
checks instead: the video demo config trains a few iterations under
``AmpOrFp32OptimWrapper(amp='cpu')`` in fp16 and bf16, the K400 tiny config
in bf16 (on small clips), through ``tools/train.py``; ``--quick`` trains
the demo in bf16 only (``tests/engine/test_cpu_amp.py`` holds the full
checks).

Each check is guarded: a failure is a FAILED row with its reason, and the
rest still run. Prints one table with the device and writes it to ``--doc``
(its section of the page; the other section is kept).

Run from the repository root, as a module::

    python -m tools.gpu_check --doc docs/gpu_check.md
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time
import traceback

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'
K400 = 'configs/k400.py'
DTYPES = ('float16', 'bfloat16')
SECTIONS = {'gpu': 'GPU checks', 'cpu': 'CPU mixed precision (no GPU)'}
NOT_RUN = ('The GPU rows have not been run yet: no GPU was at hand when '
           'this page was generated. `make gpu-check` on a machine with a '
           'CUDA GPU fills this section.')


# -- helpers -----------------------------------------------------------------
def _row(check, result, ok):
    return dict(check=check, result=result, ok=ok)


def _guarded(check, fn, *args):
    """``fn(*args)``'s rows, or one FAILED row saying why."""
    t = time.time()
    try:
        rows = fn(*args)
    except Exception as e:  # one failure must not hide the other checks
        traceback.print_exc()
        rows = [_row(check, f'{type(e).__name__}: {str(e)[:200]}', False)]
    print(f'  {check}: {time.time() - t:.0f} s', flush=True)
    return rows


def make_clips(root, num_train, size, num_frames):
    """Generated motion clips in Kinetics' layout (once per root)."""
    if not osp.exists(osp.join(root, 'kinetics400_train_list_videos.txt')):
        subprocess.run(
            [sys.executable, 'tools/data/make_synthetic_videos.py', root,
             '--num-train', str(num_train), '--num-val', '1', '--size',
             str(size), '--num-frames', str(num_frames)],
            cwd=REPO, check=True, capture_output=True)
    return root


def _data_opts(root, batch):
    return [f'train_dataloader.dataset.ann_file='
            f'{root}/kinetics400_train_list_videos.txt',
            f'train_dataloader.dataset.data_prefix.video={root}/videos_train',
            f'train_dataloader.batch_size={batch}',
            'train_dataloader.persistent_workers=False',
            'model.backbone.pretrained=None',
            'default_hooks.logger.interval=1']


def train(config, work_dir, opts, launcher=None, timeout=600):
    """Train ``config`` through ``tools/train.py`` (or ``dist_train.sh``
    with one process); the losses logged, the final loss scale, the
    seconds and the output's tail."""
    if launcher:
        port = _free_port()
        cmd = ['bash', 'tools/dist_train.sh', config, '1']
        env = dict(os.environ, PORT=str(port), PYTHON=sys.executable)
    else:
        cmd, env = [sys.executable, 'tools/train.py', config], None
    cmd += ['--work-dir', work_dir, '--no-validate', '--cfg-options'] + opts
    t = time.time()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise RuntimeError(f'exit {res.returncode}: ' + ' | '.join(
            out.strip().splitlines()[-3:]))
    scalars = glob.glob(osp.join(work_dir, '*/vis_data/scalars.json'))
    losses = [r['loss'] for r in map(json.loads, open(scalars[0]))
              if 'loss' in r]
    return dict(losses=losses, seconds=time.time() - t, out=out,
                scale=_final_scale(work_dir))


def _final_scale(work_dir):
    from sparseformer_mm.checkpoint_safety import load_weights_only
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = load_weights_only(f.read().strip())
    return ckpt['optimizer'].get('loss_scaler', {}).get('scale')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _losses(run):
    ls = run['losses']
    return f'loss {ls[0]:.3f} -> {ls[-1]:.3f} over {len(ls)} it'


def amp_training(config, dtype, work_dir, opts, min_iters, falling=False,
                 amp='cpu'):
    run = train(config, work_dir, opts + [f'optim_wrapper.amp={amp}',
                                          f'optim_wrapper.dtype={dtype}'])
    ls = run['losses']
    finite = len(ls) >= min_iters and all(map(math.isfinite, ls))
    ok = finite
    if falling:  # the mean of the last fifth below the first fifth's
        k = max(1, len(ls) // 5)
        ok = ok and sum(ls[-k:]) / k < sum(ls[:k]) / k
    return [_row(f'{osp.basename(config)} AMP {dtype}',
                 f'{_losses(run)}, final loss scale {run["scale"]}, '
                 f'{run["seconds"]:.0f} s with start-up', ok)]


# -- GPU checks --------------------------------------------------------------
PEER_MODELS = ('swin-t', 'videoswin-t')


def benchmark_rows(quick, device='cuda',
                   models=('sparseformer-t', 'swin-t', 'videosparseformer-t',
                           'videoswin-t'), dtypes=('fp32', 'fp16', 'bf16')):
    """The benchmark's rows for ``models`` in ``dtypes`` (inference and an
    fp32 training step), and ``torch.compile`` against eager for ours."""
    from projects.benchmarks import benchmark
    common = ['--groups', 'image', 'video', '--device', device, '--warmup',
              '1', '--repeats', '2' if quick else '5', '--out-dir',
              'work_dirs/gpu_check/benchmark']
    eager = benchmark.run(benchmark.parse_args(
        common + ['--models', *models, '--dtypes', *dtypes]))['results']
    ours = [m for m in models if m not in PEER_MODELS]
    compiled = benchmark.run(benchmark.parse_args(
        common + ['--models', *ours, '--dtypes', 'fp32', '--compile',
                  '--no-train']))['results']
    rows = []
    for results, want in ((eager, lambda k: not k.endswith('_compiled')),
                          (compiled, lambda k: k.endswith('_compiled'))):
        for r in results:
            unit = 'clips/s' if r['modality'] == 'video' else 'images/s'
            for key, w in r.items():
                if not (isinstance(w, dict) and want(key) and key.startswith(
                        ('infer', 'train', 'latency'))):
                    continue
                check = f'benchmark {r["model"]} {key}'
                if 'throughput' not in w:
                    rows.append(_row(check, w.get('error', '?'), False))
                    continue
                vs = ''
                if 'vs_eager' in w:
                    vs = (f', {w["vs_eager"]:.2f}x eager, fullgraph '
                          f'{w.get("fullgraph")}')
                elif 'ratio' in w and r['model'] not in PEER_MODELS:
                    vs = (f', {w["ratio"]:.2f}x the peer\'s speed, '
                          f'{w["mem_ratio"]:.2f}x its memory')
                rows.append(_row(check, f'{w["throughput"]:.1f} {unit} '
                                 f'(batch {w["batch"]}), '
                                 f'+{w["peak_mem_mb"]:.0f} MB{vs}', True))
    return rows


def k400_gpu(dtype, work, iters):
    # 16 clips of 32 frames, batch 8: 2 iterations an epoch
    root = make_clips(osp.join(work, 'clips64'), 4, 64, 64)
    opts = _data_opts(root, 8) + [
        'train_dataloader.num_workers=4', f'train_cfg.max_epochs={iters // 2}',
        'default_hooks.checkpoint.interval=1000']
    return amp_training(K400, dtype, osp.join(work, f'k400_{dtype}'), opts,
                        iters, falling=True, amp=True)


def dist_nccl(work):
    root = make_clips(osp.join(work, 'clips32'), 2, 32, 32)
    run = train(DEMO, osp.join(work, 'dist'), _data_opts(root, 4) + [
        'train_dataloader.num_workers=2', 'train_cfg.max_epochs=1'],
        launcher='pytorch')
    # the config's dist_cfg backend, unless tools/train.py fell back to
    # gloo (it says so); the launcher as mmengine logs it
    backend = re.search(r"dist_cfg=dict\(\s*backend='(\w+)'", run['out'])
    backend = backend.group(1) if backend else '?'
    if 'with the gloo backend' in run['out']:
        backend = 'gloo'
    log = ''.join(open(f).read() for f in
                  glob.glob(osp.join(work, 'dist', '*', '*.log')))
    ok = (backend == 'nccl' and 'Distributed launcher: pytorch' in log
          and all(map(math.isfinite, run['losses'])))
    return [_row('dist_train.sh, 1 GPU', f'backend {backend}, '
                 f'{_losses(run)}', ok)]


def grid_sample_fp16():
    """5-D trilinear grid_sample on CUDA in fp16 against fp32 (the model
    samples in fp32; this is what an fp16 sampling would lose)."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    feat = torch.randn(2, 96, 8, 56, 56, device='cuda')
    grid = torch.rand(2, 64, 36, 1, 3, device='cuda') * 2 - 1
    out = {}
    for dtype in (torch.float32, torch.float16):
        f = feat.to(dtype).requires_grad_()
        g = grid.to(dtype).requires_grad_()
        y = F.grid_sample(f, g, align_corners=False)
        y.float().square().sum().backward()
        out[dtype] = (y.float(), f.grad.float(), g.grad.float())
    names = ('forward', 'feature grad', 'grid grad')
    errs = [((a - b).norm() / b.norm()).item() for a, b in
            zip(out[torch.float16], out[torch.float32])]
    return [_row(f'grid_sample 5-D fp16 vs fp32 {n}',
                 f'relative error {e:.1e}', math.isfinite(e) and e < 1e-2)
            for n, e in zip(names, errs)]


def gpu_checks(work, quick):
    iters = 10 if quick else 50
    rows = _guarded('benchmark', benchmark_rows, quick)
    for dtype in DTYPES:
        rows += _guarded(f'K400 AMP {dtype}', k400_gpu, dtype, work, iters)
    rows += _guarded('dist_train.sh NCCL', dist_nccl, work)
    rows += _guarded('grid_sample fp16', grid_sample_fp16)
    return rows


# -- CPU checks --------------------------------------------------------------
def cpu_checks(work, quick):
    root = make_clips(osp.join(work, 'clips32'), 1, 32, 32)
    opts = _data_opts(root, 2) + ['train_dataloader.num_workers=0',
                                  'train_cfg.max_epochs=1']
    # the K400 tiny config's model, optimizer and runtime on 4 x 64^2
    # clips (32 x 224^2 takes minutes an iteration in CPU fp16)
    small = ['train_dataloader.dataset.pipeline.1.clip_len=4',
             'train_dataloader.dataset.min_frames=4',
             'train_dataloader.dataset.pipeline.5.scale=(64,64)']
    # K400 in CPU fp16 takes minutes an iteration (fp16 is emulated on most
    # CPUs): bf16 here, both in tests/engine/test_cpu_amp.py
    # --quick: one training (the demo in bf16), a smoke test of this path
    configs = [(DEMO, opts, ('bfloat16', ) if quick else DTYPES)] + (
        [] if quick else [(K400, opts + small, ('bfloat16', ))])
    rows = []
    for config, o, dtypes in configs:
        for dtype in dtypes:
            name = f'{osp.basename(config)} {dtype}'
            rows += _guarded(name, amp_training, config, dtype, osp.join(
                work, f'{osp.basename(config)[:-3]}_{dtype}'), o, 2)
    return rows


# -- the table and the page --------------------------------------------------
def device_line():
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return (f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch '
                f'{torch.__version__}, CUDA {torch.version.cuda}')
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'CPU only: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}'


def table(rows):
    lines = ['| check | result | ok |', '|---|---|---|']
    lines += [f'| {r["check"]} | {r["result"]} | '
              f'{"yes" if r["ok"] else "**FAILED**"} |' for r in rows]
    return '\n'.join(lines)


def write_doc(path, section, text):
    """Replace ``section``'s part of the page, keep the other one."""
    parts = {k: None for k in SECTIONS}
    if osp.exists(path):
        old = open(path).read()
        for k in SECTIONS:
            m = re.search(f'<!-- {k} -->\n(.*?)<!-- /{k} -->', old, re.S)
            parts[k] = m.group(1) if m else None
    parts[section] = text
    parts['gpu'] = parts['gpu'] or NOT_RUN + '\n'
    parts['cpu'] = parts['cpu'] or 'Not run yet.\n'
    page = [
        '# GPU check', '',
        'Generated by `make gpu-check` (`tools/gpu_check.py`); each section '
        'is rewritten by the run that produced it. With a CUDA GPU it runs '
        "the benchmark's GPU group, torch.compile against eager, 50 AMP "
        'iterations of the K400 tiny config in fp16 and bf16 on generated '
        'clips, a one-GPU `dist_train.sh` over NCCL and the 5-D '
        '`grid_sample` in fp16 against fp32; without one, the CPU '
        "mixed-precision trainings (`AmpOrFp32OptimWrapper(amp='cpu')`; the "
        'K400 tiny config in bf16 only: in CPU fp16, emulated on most CPUs, '
        'it takes minutes an iteration, and `tests/engine/test_cpu_amp.py` '
        'trains it in both).', '']
    for k, title in SECTIONS.items():
        page += [f'## {title}', '', f'<!-- {k} -->', parts[k].rstrip('\n'),
                 f'<!-- /{k} -->', '']
    with open(path, 'w') as f:
        f.write('\n'.join(page))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--quick', action='store_true',
                   help='fewer iterations and models (a smoke test); '
                   'without a GPU, the demo config in bf16 only')
    p.add_argument('--work-dir', default='work_dirs/gpu_check')
    p.add_argument('--doc', help='write the table into this page '
                   '(docs/gpu_check.md)')
    args = p.parse_args(argv)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    t = time.time()
    gpu = torch.cuda.is_available()
    if gpu:
        rows, section = gpu_checks(work, args.quick), 'gpu'
    else:
        print("No CUDA GPU here: running the CPU mixed-precision checks "
              "(AmpOrFp32OptimWrapper amp='cpu') instead.", flush=True)
        rows, section = cpu_checks(work, args.quick), 'cpu'
    text = (f'Device: {device_line()}. {len(rows)} checks in '
            f'{time.time() - t:.0f} s{" (--quick)" if args.quick else ""}.'
            f'\n\n{table(rows)}\n')
    print(text)
    if args.doc:
        write_doc(args.doc, section, text)
        print(f'written: {args.doc}')
    return 0 if all(r['ok'] for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
