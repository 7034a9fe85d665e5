"""Peak training and inference memory of the Kinetics-400 configs per batch
size, and the GPU sizes that fit them: writes ``docs/memory.md``.

Each model is built from its config in ``configs/videosparseformer/``
(without pretrained weights; the bootstrapped L models from a
bootstrapped B config with the arch overridden). For each batch size one
inference forward and one training step are measured in fp32 on the CPU
with :class:`benchmark_utils.PeakMemory` (the training step is the second
of two, so that it runs with the first one's gradients and AdamW moments
held, as every step of a run does). A total adds what the measurement's
baseline already held: the weights and buffers and the input batch. A
line ``a + b * batch`` is fitted to each mode's totals; its intercept is the
state (weights, and for training gradients and two AdamW moments), its
slope the activations per clip.

From the CPU line the GPU peak is estimated (see :func:`gpu_line`): the
caching allocator's and cuDNN's overhead as a margin, DDP's gradient
buckets, the CUDA context, and under AMP the activations scaled by the
ratio measured under CPU bf16 autocast (:func:`amp_ratios`) plus the
half-precision weight copies autocast caches.

Run from the repository root, as a module:

    # all K400 models, batches 1 and 2 (4 for T), about 40 min on 2 cores:
    python -m projects.benchmarks.memory --doc docs/memory.md
    # some of them:
    python -m projects.benchmarks.memory --models T B --doc /tmp/memory.md
    # the doc again from the stored measurements (work_dirs/memory/):
    python -m projects.benchmarks.memory --doc-only --doc docs/memory.md
    # a nano model on small clips, a minute (the test's mode):
    python -m projects.benchmarks.memory --quick --doc /tmp/memory.md
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import sparseformer_mm  # noqa: F401  (compat fixes, registries)
from projects.benchmarks import benchmark_utils as bu
from sparseformer_mm.archs import parse_arch

GiB = 2**30
K400 = 'configs/videosparseformer/'
_SUFFIX = '_8xb8-32x2x1-30e_kinetics400-rgb.py'
BTSP_AUGREG = (K400 + 'videosparseformer-btsp-augreg-base_in1k-btsp-pre' +
               _SUFFIX)
BTSP_CLIP = K400 + 'videosparseformer-btsp-clip-base_in1k-btsp-pre' + _SUFFIX
NANO = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'

# GPU sizes (GiB of device memory) the table says fit or not.
GPU_SIZES = (16, 24, 40, 80)
# What a GPU run adds to the CPU measurement (gpu_line says why).
GPU_MARGIN = 0.15
CUDA_CONTEXT = 0.5 * GiB
TARGET_BATCH = 8  # clips per GPU in the configs (8 x 8)
TEST_VIEWS = 12  # the test pipelines' 4 clips x 3 crops, one video a batch


@dataclass(frozen=True)
class Entry:
    """One model to measure.

    Attributes:
        label (str): its name in the table.
        config (str): the config it is built from.
        arch (str, optional): an arch replacing the config's (the neck's and
            head's input widths follow it).
        batches (tuple): the batch sizes measured.
        view (tuple, optional): ``(frames, side)``; None: the config's
            ``clip_len`` and ``crop_size``.
    """
    label: str
    config: str
    arch: Optional[str] = None
    batches: Tuple[int, ...] = (1, 2)
    view: Optional[Tuple[int, int]] = None


ENTRIES = [
    Entry('T', K400 + 'videosparseformer-tiny_in1k-pre' + _SUFFIX,
          batches=(1, 2, 4)),
    Entry('S', K400 + 'videosparseformer-small_in1k-pre' + _SUFFIX),
    Entry('B', K400 + 'videosparseformer-base_in1k-pre' + _SUFFIX),
    Entry('btsp-augreg-B', BTSP_AUGREG),
    Entry('btsp-clip-B', BTSP_CLIP),
    Entry('btsp-augreg-L', BTSP_AUGREG, arch='btsp-augreg-large'),
    Entry('btsp-clip-L', BTSP_CLIP, arch='btsp-clip-large'),
]
QUICK = [Entry('nano', NANO, batches=(1, 2, 3), view=(8, 160))]
WARMUP_SIDE = 64  # the warm-up clip's side (its frames: the entry's)


def view_of(entry: Entry) -> Tuple[int, int]:
    """``(frames, side)`` of one training clip of ``entry``."""
    if entry.view is not None:
        return entry.view
    cfg = Config.fromfile(entry.config)
    if 'clip_len' not in cfg or 'crop_size' not in cfg:
        raise KeyError(f'{entry.config}: needs top-level clip_len and '
                       'crop_size (as the K400 configs set them), or give '
                       'the Entry a view')
    return int(cfg.clip_len), int(cfg.crop_size)


def build_model(entry: Entry, with_cp: bool = False) -> torch.nn.Module:
    """The recognizer of ``entry.config`` without pretrained weights, with
    ``entry.arch`` (and the widths that follow it) and ``with_cp``."""
    spec = bu.resolve_spec(entry.config)
    frames, side = view_of(entry)
    cfg = copy.deepcopy(spec.build_cfg(frames, side))
    if entry.arch is not None:
        width = parse_arch(entry.arch)['stages'][-1]['width']
        cfg['backbone']['arch'] = entry.arch
        for part in ('neck', 'cls_head'):
            if 'in_channels' in cfg.get(part, {}):
                cfg[part]['in_channels'] = width
    if with_cp:
        cfg['backbone']['with_cp'] = True
    with DefaultScope.overwrite_default_scope(spec.scope):
        return MODELS.build(cfg)


def state_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights and buffers."""
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers()))


def param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def measure_peak(model: torch.nn.Module, shape: Sequence[int], batch: int,
                 mode: str, dtype: str = 'fp32') -> dict:
    """Peak memory of one inference forward or one training step of
    ``batch`` clips, in bytes: ``added`` (on top of the built model and
    its input), ``total`` (with the weights, buffers and input).

    A training step is measured as the second of two in one
    :class:`~benchmark_utils.PeakMemory` block, so its peak holds the
    gradients and AdamW moments of the first."""
    device = torch.device('cpu')
    model.zero_grad(set_to_none=True)
    x = torch.randn(batch, *shape)
    start = time.perf_counter()
    with bu.PeakMemory(device) as mem:
        step = bu.make_step(model, x, mode, dtype)
        for _ in range(2 if mode == 'train' else 1):
            step()
    seconds = time.perf_counter() - start
    del step
    model.zero_grad(set_to_none=True)
    bu.release_heap()
    total = mem.peak + state_bytes(model) + x.numel() * x.element_size()
    return dict(mode=mode, batch=batch, dtype=dtype, added=mem.peak,
                total=total, seconds=seconds)


def fit_line(batches: Sequence[int],
             values: Sequence[float]) -> Tuple[float, float]:
    """Least-squares ``(intercept, slope)`` of ``values`` over ``batches``
    (two points: the line through them)."""
    n = len(batches)
    if n < 2 or len(set(batches)) < 2:
        raise ValueError(f'a line needs two distinct batches, got {batches}')
    mx, my = sum(batches) / n, sum(values) / n
    sxx = sum((b - mx) ** 2 for b in batches)
    slope = sum((b - mx) * (v - my) for b, v in zip(batches, values)) / sxx
    return my - slope * mx, slope


def at(line: Tuple[float, float], batch: float) -> float:
    return line[0] + line[1] * batch


def largest_batch(line: Tuple[float, float], capacity: float) -> int:
    """The largest batch whose predicted peak fits ``capacity`` (0: none)."""
    intercept, slope = line
    if intercept + slope > capacity:
        return 0
    return int(math.floor((capacity - intercept) / slope))


def gpu_line(cpu: Tuple[float, float], params: int, mode: str,
             amp: bool, amp_ratio: float = 0.5) -> Tuple[float, float]:
    """The peak on one GPU of a DDP run, estimated from the fp32 CPU line
    (``params``: bytes of the fp32 weights).

    - AMP (``amp``): autocast keeps the fp32 weights, gradients and AdamW
      moments (the intercept) and runs the matmuls and convs in half
      precision: the activations (the slope) are ``amp_ratio`` of fp32's
      (half where nothing was measured), and the half-precision copies of
      the weights autocast caches for the forward (2 bytes a parameter)
      are added.
    - Training under DDP: gradient buckets as large as the fp32 gradients
      (``MMDistributedDataParallel`` does not make gradients bucket views).
    - ``GPU_MARGIN`` (15 %) on top: the CUDA caching allocator rounds and
      fragments its blocks (reserved memory is typically 5-15 % above
      allocated), cuDNN takes workspace for the stem's conv, and the
      foreach AdamW step allocates temporaries the size of a few
      parameter groups.
    - ``CUDA_CONTEXT`` (0.5 GiB): the CUDA context and kernels, which no
      allocator counts.
    """
    intercept, slope = cpu
    if amp:
        slope, intercept = slope * amp_ratio, intercept + params / 2
    if mode == 'train':
        intercept += params
    return ((intercept * (1 + GPU_MARGIN) + CUDA_CONTEXT),
            slope * (1 + GPU_MARGIN))


def measure_entry(entry: Entry, with_cp: bool = False,
                  modes: Sequence[str] = ('infer', 'train'),
                  dtype: str = 'fp32', log=print) -> dict:
    """Every batch of ``entry`` in every mode, the fitted lines (on the
    first two batches; any further batch is held out and its prediction
    error reported)."""
    model = build_model(entry, with_cp)
    frames, side = view_of(entry)
    shape = bu.input_shape('video', frames, side)
    # one-time costs (kernels' code pages, thread pools) paid outside the
    # measurements, on a small clip
    for mode in modes:
        bu.make_step(model, torch.randn(1, 3, frames, WARMUP_SIDE,
                                        WARMUP_SIDE), mode, dtype)()
    model.zero_grad(set_to_none=True)
    result = dict(label=entry.label, config=entry.config, arch=entry.arch,
                  with_cp=with_cp, dtype=dtype, frames=frames, side=side,
                  params=param_bytes(model) // 4,
                  state_bytes=state_bytes(model), rows=[], lines={})
    for mode in modes:
        rows = []
        for b in entry.batches:
            r = measure_peak(model, shape, b, mode, dtype)
            log(f'{entry.label}{" with_cp" if with_cp else ""} {dtype} '
                f'{mode} batch {b}: {r["total"] / GiB:.2f} GiB '
                f'({r["seconds"]:.0f} s)')
            rows.append(r)
        fit = rows[:2]
        line = fit_line([r['batch'] for r in fit], [r['total'] for r in fit])
        held = [dict(batch=r['batch'], measured=r['total'],
                     predicted=at(line, r['batch'])) for r in rows[2:]]
        result['rows'] += rows
        result['lines'][mode] = dict(intercept=line[0], slope=line[1],
                                     held_out=held)
    del model
    bu.release_heap()
    return result


# ------------------------------------------------------------------ doc --
def _g(x: float) -> str:
    return f'{x / GiB:.2f}'


def _fits(line: Tuple[float, float]) -> str:
    fits = [f'{s}' for s in GPU_SIZES if at(line, TARGET_BATCH) <= s * GiB]
    return ', '.join(fits) if fits else 'none'


def _largest(line: Tuple[float, float]) -> str:
    return ' / '.join(str(largest_batch(line, s * GiB)) for s in GPU_SIZES)


def render_doc(results: List[dict], machine: dict) -> str:
    """``docs/memory.md`` from :func:`measure_entry` results (the bf16
    ones give the AMP activation ratio, :func:`amp_ratios`)."""
    ratios = amp_ratios(results)
    results = [res for res in results if res['dtype'] == 'fp32']
    batches = sorted({r['batch'] for res in results for r in res['rows']})
    out = [
        '# Memory: what fits on a GPU',
        '',
        '<!-- generated by `python -m projects.benchmarks.memory --doc '
        'docs/memory.md`; do not edit -->',
        '',
        'Peak memory of one training step (forward, backward, AdamW step; '
        'with the weights, gradients, AdamW moments, activations and the '
        'input batch) and of one inference forward, per batch of clips, '
        'for the Kinetics-400 models of `configs/videosparseformer/` at '
        'their training view. How each number was obtained is below the '
        'tables.',
        '',
        f'Measured on: {machine.get("cpu")}, {machine.get("cpu_count")} '
        f'cores, torch {machine.get("torch")}, {machine.get("date")}. '
        'No GPU was at hand: every GPU number is an estimate from the CPU '
        'measurement.',
        '',
        '## Measured on the CPU, fp32 (GiB)',
        '',
        '| model | view | params | with_cp | mode | ' +
        ' | '.join(f'batch {b}' for b in batches) +
        f' | state + activations/clip | batch {TARGET_BATCH} (fitted) |',
        '| :-- | :-: | --: | :-: | :-- | ' + ' | '.join('--:' for _ in batches)
        + ' | --: | --: |',
    ]
    for res in results:
        for mode in ('train', 'infer'):
            if mode not in res['lines']:
                continue
            line = res['lines'][mode]
            ln = (line['intercept'], line['slope'])
            cells = []
            for b in batches:
                row = [r for r in res['rows']
                       if r['mode'] == mode and r['batch'] == b]
                cells.append(_g(row[0]['total']) if row else '')
            out.append(
                f'| {res["label"]} | {res["frames"]} x {res["side"]}² | '
                f'{res["params"] / 1e6:.1f} M | '
                f'{"yes" if res["with_cp"] else "no"} | {mode} | ' +
                ' | '.join(cells) +
                f' | {_g(ln[0])} + {_g(ln[1])} | {_g(at(ln, TARGET_BATCH))} |')
    out += [
        '',
        f'## {TARGET_BATCH} clips per GPU: estimated GPU peak (GiB) and the '
        'GPU sizes that fit',
        '',
        f'GPU sizes: {", ".join(str(s) for s in GPU_SIZES)} GB. "largest '
        f'batch" is per GPU size, in that order.',
        '',
        '| model | with_cp | mode | fp32 | fits (fp32) | largest batch '
        '(fp32) | AMP | fits (AMP) | largest batch (AMP) |',
        '| :-- | :-: | :-- | --: | :-- | :-: | --: | :-- | :-: |',
    ]
    for res in results:
        for mode in ('train', 'infer'):
            if mode not in res['lines']:
                continue
            line = res['lines'][mode]
            cpu = (line['intercept'], line['slope'])
            cells = []
            for amp in (False, True):
                g = gpu_line(cpu, 4 * res['params'], mode, amp,
                             ratios.get(mode, (0.5, ))[0])
                cells += [_g(at(g, TARGET_BATCH)), _fits(g), _largest(g)]
            out.append(f'| {res["label"]} | '
                       f'{"yes" if res["with_cp"] else "no"} | {mode} | ' +
                       ' | '.join(cells) + ' |')
    out += ['', '## What fits', ''] + _summary(results, ratios)
    out += ['', '## How the numbers were obtained', '']
    out += _method(results, ratios)
    return '\n'.join(out) + '\n'


def amp_ratios(results: List[dict]) -> Dict[str, Tuple[float, str]]:
    """Per mode, the largest ratio of activations per clip under CPU bf16
    autocast to fp32 among the models measured both ways, and the model."""
    fp32 = {(r['label'], r['with_cp']): r for r in results
            if r['dtype'] == 'fp32'}
    ratios = {}
    for res in results:
        ref = fp32.get((res['label'], res['with_cp']))
        if res['dtype'] != 'bf16' or ref is None:
            continue
        for mode, line in res['lines'].items():
            r = line['slope'] / ref['lines'][mode]['slope']
            if r > ratios.get(mode, (0, ))[0]:
                ratios[mode] = (r, res['label'])
    return ratios


def _method(results: List[dict],
            ratios: Dict[str, Tuple[float, str]]) -> List[str]:
    held = [(res['label'], mode, h) for res in results
            for mode, line in res['lines'].items() for h in line['held_out']]
    checks = []
    for res in results:
        if 'train' in res['lines']:
            p = 4 * res['params']
            cp = ' with_cp' if res['with_cp'] else ''
            checks.append(f'{res["label"]}{cp} '
                          f'{res["lines"]["train"]["intercept"] / p:.1f}x')
    lines = [
        '- **Measured**: `projects/benchmarks/memory.py` builds each model '
        'from its config (no weights are read; the bootstrapped L models '
        'from the bootstrapped B config with `arch=btsp-augreg-large` / '
        '`btsp-clip-large` and the neck and head widths set to 1024) and '
        'runs, in one process per model on the CPU in fp32, after a warm-up '
        'forward and step on a 64² clip, one inference '
        'forward (`torch.inference_mode`) and a training step (cross-'
        'entropy on random labels, backward, AdamW) per batch size, with '
        'the helpers of `projects/benchmarks/benchmark_utils.py` '
        '(`make_step`, `PeakMemory`: the peak resident set size sampled '
        'every 2 ms, minus the size before, after freed heap is handed '
        'back). The training step measured is the second of two, so its '
        'peak holds the first one\'s gradients and AdamW moments. Each '
        'total adds the weights and buffers and the input batch, which '
        'the baseline already held.',
        '- **Fitted**: a line `state + activations x batch` through '
        'batches 1 and 2 (`state + activations/clip` above); batch '
        f'{TARGET_BATCH} and the largest batches are read off that line, '
        'not measured (CPU time here is scarce). Memory is affine in the '
        'batch: the weights, gradients and moments do not grow with it, '
        'the activations grow linearly. The inference lines are the '
        'noisier (their peaks are a fraction of a GiB; the two '
        'bootstrapped B models have the same shapes), and far below every '
        'GPU size. Repeated runs of one model on this shared machine '
        'differ by up to about 20 % in the activations per clip: read an '
        'estimate within 20 % of a GPU\'s size as marginal. Checks: ' +
        ('; '.join(f'{label} {mode} batch {h["batch"]} measured '
                   f'{_g(h["measured"])} GiB, the line says '
                   f'{_g(h["predicted"])} '
                   f'({100 * (h["predicted"] / h["measured"] - 1):+.1f} %)'
                   for label, mode, h in held) or 'none held out') +
        '; the training intercept over the fp32 weights (4 would be '
        'weights + gradients + two moments exactly; the remainder is '
        'allocator and thread-pool overhead that does not grow with the '
        'batch): ' + ', '.join(checks) + '.',
        f'- **GPU, fp32**: the CPU line plus DDP\'s gradient buckets '
        f'(the size of the fp32 gradients), plus {GPU_MARGIN:.0%} for the '
        'CUDA caching allocator (block rounding and fragmentation: '
        'reserved memory typically runs 5-15 % above allocated), cuDNN '
        'workspaces (the stem\'s conv) and the foreach AdamW step\'s '
        f'temporaries, plus {CUDA_CONTEXT / GiB:.1f} GiB of CUDA context. '
        'A size "fits" when that estimate is at most its nominal GiB.',
        '- **GPU, AMP** (the configs\' `AmpOrFp32OptimWrapper` on a GPU): '
        'autocast keeps fp32 master weights, gradients and AdamW moments '
        '(the intercept is unchanged) and adds the half-precision weight '
        'copies it caches (2 bytes a parameter). The activations per clip '
        'are fp32\'s times ' + _ratio_text(ratios) + ' The fp32 columns are '
        'the safe bound.',
        '- `with_cp`: `model.backbone.with_cp=True` (e.g. `--cfg-options '
        'model.backbone.with_cp=True`) recomputes each application of a '
        'SparseFormer unit in backward (activation checkpointing, '
        '`torch.utils.checkpoint` without re-entry; the drop-path masks '
        'are redrawn the same) instead of holding its activations; the '
        'stem\'s are kept. Gradients equal the plain run\'s '
        '(`tests/models/backbones/test_with_cp.py`).',
    ]
    return lines


def _smallest(line: Tuple[float, float]) -> str:
    fits = [s for s in GPU_SIZES if at(line, TARGET_BATCH) <= s * GiB]
    return f'{fits[0]} GB' if fits else f'no {GPU_SIZES[-1]} GB GPU'


def _summary(results: List[dict],
             ratios: Dict[str, Tuple[float, str]]) -> List[str]:
    """One line per model: the smallest GPU that trains 8 clips."""
    lines = [f'Training {TARGET_BATCH} clips per GPU (the configs\' '
             f'`8xb8`), smallest GPU by the estimates above:', '']
    for res in results:
        if 'train' not in res['lines']:
            continue
        line = res['lines']['train']
        cpu = (line['intercept'], line['slope'])
        f32 = gpu_line(cpu, 4 * res['params'], 'train', False)
        amp = gpu_line(cpu, 4 * res['params'], 'train', True,
                       ratios.get('train', (0.5, ))[0])
        cp = ' with `with_cp`' if res['with_cp'] else ''
        lines.append(f'- {res["label"]}{cp}: {_smallest(f32)} in fp32 '
                     f'({_g(at(f32, TARGET_BATCH))} GiB), {_smallest(amp)} '
                     f'with AMP ({_g(at(amp, TARGET_BATCH))} GiB).')
    plain = {r['label']: r for r in results if not r['with_cp']}
    cuts = []
    for res in results:
        if res['with_cp'] and res['label'] in plain:
            ref = plain[res['label']]['lines']['train']['slope']
            cut = 1 - res['lines']['train']['slope'] / ref
            cuts.append(f'{res["label"]} {cut:.0%}')
    if cuts:
        lines += ['', '`with_cp` cuts the training activations per clip by ' +
                  ', '.join(cuts) + '; it recomputes the units\' forward in '
                  'backward (the time that adds was not measured here).']
    views = []
    for res in results:
        if 'infer' in res['lines']:
            line = res['lines']['infer']
            g = gpu_line((line['intercept'], line['slope']),
                         4 * res['params'], 'infer', False)
            views.append(f'{res["label"]} {_g(at(g, TEST_VIEWS))}')
    lines += ['', f'Testing runs one video a batch, all its {TEST_VIEWS} '
              'views (4 clips x 3 crops) at once: inference at batch '
              f'{TEST_VIEWS}, in fp32 on a GPU (GiB): ' + ', '.join(views) +
              '.']
    return lines


def _ratio_text(ratios: Dict[str, Tuple[float, str]]) -> str:
    if not ratios:
        return ('0.5, an assumption, not a measurement: the stem\'s '
                'channel norm and the feature sampling run in fp32 under '
                'autocast, so the true ratio lies between 0.5 and 1.')
    return ('the ratio measured on the CPU under bf16 autocast (the same '
            'width as fp16; the configs\' fp16 on a GPU autocasts the same '
            'kinds of ops, and the stem\'s channel norm and the feature '
            'sampling stay fp32 in both): ' + ', '.join(
                f'{mode} {r:.2f} ({label}, batches 1 and 2)'
                for mode, (r, label) in sorted(ratios.items())) +
            '; 0.5 is what halving everything would give. That ratio is '
            'applied to every model.')


def write_doc(path: str, results: List[dict]) -> None:
    machine = bu.machine_info(torch.device('cpu'))
    machine['date'] = time.strftime('%Y-%m-%d')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(render_doc(results, machine))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', nargs='+', default=None,
                   help='labels of ENTRIES to measure (default: all)')
    p.add_argument('--with-cp', nargs='*',
                   default=['B', 'btsp-augreg-L', 'btsp-clip-L'],
                   help='labels also measured with model.backbone.with_cp')
    p.add_argument('--bf16', nargs='*', default=['T'],
                   help='labels also measured under CPU bf16 autocast: '
                   'the activation ratio the AMP estimates use')
    p.add_argument('--skip-plain', action='store_true',
                   help='measure only the --with-cp and --bf16 runs (the '
                   'plain fp32 ones kept from --results)')
    p.add_argument('--quick', action='store_true',
                   help='a nano model on 8 x 160² clips (a minute)')
    p.add_argument('--results', default='work_dirs/memory/results.json',
                   help='JSON of all measurements; measured models are '
                   'merged into it, so the models can be run one a process')
    p.add_argument('--doc', default=None, help='write this markdown doc')
    p.add_argument('--doc-only', action='store_true',
                   help='measure nothing: write --doc from --results')
    return p.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    entries = QUICK if args.quick else ENTRIES
    known = {e.label: e for e in entries}
    labels = [] if args.doc_only else args.models or list(known)
    unknown = [m for m in labels if m not in known]
    if unknown:
        raise SystemExit(f'unknown models {unknown}: use {list(known)}')
    stored: Dict[str, dict] = {}
    key = '{label}:{with_cp}:{dtype}'.format
    if osp.isfile(args.results):
        with open(args.results) as f:
            stored = {key(**r): r for r in json.load(f)}
    for label in labels:
        runs = [] if args.skip_plain else [(False, 'fp32')]
        if label in args.with_cp:
            runs.append((True, 'fp32'))
        if label in args.bf16:
            runs.append((False, 'bf16'))
        for cp, dtype in runs:
            # checkpointing changes training only
            res = measure_entry(known[label], with_cp=cp, dtype=dtype,
                                modes=('train', ) if cp else
                                ('infer', 'train'))
            stored[key(label=label, with_cp=cp, dtype=dtype)] = res
    order = [key(label=e.label, with_cp=cp, dtype=d) for e in entries
             for cp in (False, True) for d in ('fp32', 'bf16')]
    results = [stored[k] for k in order if k in stored]
    os.makedirs(osp.dirname(osp.abspath(args.results)), exist_ok=True)
    with open(args.results, 'w') as f:
        json.dump(results, f, indent=1)
    if args.doc:
        write_doc(args.doc, results)
    return results


if __name__ == '__main__':
    main()
