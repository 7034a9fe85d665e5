"""Throughput, latency and memory of SparseFormer and dense peers, measured
side by side in one process: the measuring parts of ``benchmark.py`` beside
it.

The models are built from the installed mmpretrain / mmaction2 registries
without weights (speed does not depend on them): SparseFormer and
VideoSparseFormer T/S/B next to Swin-T, DeiT-S and ViT-B for images and Video
Swin-T, TimeSformer, MViTv2-S, X3D-M, UniFormer-S, UniFormerV2-B/16 and
VideoMAE ViT-B for video (the last four from the configs shipped in the
mmaction2 wheel). A config file path serves as a model name too, so any
experiment can be measured the same way. :func:`read_test_protocol` reads a
config's test views (frames, clips, crops, crop size) and
:func:`published_top1` the Kinetics-400 top-1 that mmaction2's model zoo
lists for it, both from the installed package.

Memory is what the workload adds on top of the built model: on a GPU
``max_memory_allocated`` minus the allocation before it; on a CPU the peak
resident set size (sampled every few milliseconds) minus the resident size
before it, after handing freed heap back to the system.
"""
import ctypes
import gc
import os
import os.path as osp
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from tools.analysis_tools.complexity import Logits, flop_analyzers

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
# A view's spatial size: a side for square inputs, or (height, width).
Resolution = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model for a given input.

    Attributes:
        modality (str): ``'image'`` or ``'video'``.
        scope (str): registry scope, ``'mmpretrain'`` or ``'mmaction'``.
        build_cfg (Callable): ``(frames, resolution) -> model config dict``
            (``frames`` is ignored for images).
        view (tuple): the model's standard view ``(frames, resolution)``
            (``frames`` is 1 for images).
    """
    modality: str
    scope: str
    build_cfg: Callable
    view: tuple


def _image_classifier(backbone, neck, in_channels, head='LinearClsHead'):
    return dict(type='ImageClassifier', backbone=backbone, neck=neck,
                head=dict(type=head, num_classes=1000,
                          in_channels=in_channels))


def _sparseformer(arch, dims):
    return lambda t, r: _image_classifier(
        dict(type='SparseFormer', arch=arch),
        dict(type='TokenPooling', in_channels=dims), dims)


def _vit(arch, dims):
    return lambda t, r: _image_classifier(
        dict(type='VisionTransformer', arch=arch, img_size=r, patch_size=16),
        None, dims, head='VisionTransformerClsHead')


def _recognizer(backbone, head, dims, neck=None):
    cfg = dict(type='Recognizer3D', backbone=backbone,
               cls_head=dict(type=head, num_classes=400, in_channels=dims))
    if neck:
        cfg['neck'] = neck
    return cfg


def _video_sparseformer(arch, dims):
    return lambda t, r: _recognizer(
        dict(type='VideoSparseFormer', arch=arch, replicates=8),
        'SparseFormerHead', dims,
        neck=dict(type='TokenPooling', in_channels=dims))


def mmaction_config(rel: str) -> str:
    """Path of a config shipped in the installed mmaction2 wheel
    (``rel`` under its ``configs/``, e.g. ``recognition/x3d/....py``)."""
    import mmaction
    return osp.join(osp.dirname(mmaction.__file__), '.mim', 'configs', rel)


def _config_model(path: str) -> dict:
    """A config's ``model`` dict without pretrained weights (nothing is
    downloaded or read: speed does not depend on the weights)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'config {path} not found: for mmaction2 configs install the '
            'mmaction2 wheel (it ships them under mmaction/.mim/configs)')
    model = Config.fromfile(path).model.to_dict()
    backbone = model.get('backbone', {})
    if backbone.get('pretrained'):
        backbone['pretrained'] = None
    if backbone.get('clip_pretrained'):  # UniFormerV2's CLIP weights
        backbone['clip_pretrained'] = False
    model.pop('init_cfg', None)
    return model


def _from_mmaction_config(rel: str):
    return lambda t, r: _config_model(mmaction_config(rel))


# The peers' published K400 configs (their test protocols are read from them).
MMACTION_K400 = {
    'videoswin-t': 'recognition/swin/swin-tiny-p244-w877_in1k-pre_8xb8-amp-'
                   '32x2x1-30e_kinetics400-rgb.py',
    'mvitv2-s': 'recognition/mvit/mvit-small-p244_32xb16-16x4x1-200e_'
                'kinetics400-rgb.py',
    'timesformer': 'recognition/timesformer/timesformer_divST_8xb8-8x32x1-'
                   '15e_kinetics400-rgb.py',
    'x3d-m': 'recognition/x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py',
    'uniformer-s': 'recognition/uniformer/uniformer-small_imagenet1k-pre_'
                   '16x4x1_kinetics400-rgb.py',
    'uniformerv2-b': 'recognition/uniformerv2/uniformerv2-base-p16-res224_'
                     'clip_8xb32-u8_kinetics400-rgb.py',
    'videomae-b': 'recognition/videomae/vit-base-p16_videomae-k400-pre_'
                  '16x4x1_kinetics-400.py',
}

ZOO: Dict[str, ModelSpec] = {
    'sparseformer-t': ModelSpec('image', 'mmpretrain',
                                _sparseformer('tiny', 512), (1, 224)),
    'sparseformer-s': ModelSpec('image', 'mmpretrain',
                                _sparseformer('small', 640), (1, 224)),
    'sparseformer-b': ModelSpec('image', 'mmpretrain',
                                _sparseformer('base', 768), (1, 224)),
    'swin-t': ModelSpec('image', 'mmpretrain', lambda t, r: _image_classifier(
        dict(type='SwinTransformer', arch='tiny', img_size=r,
             pad_small_map=True),
        dict(type='GlobalAveragePooling'), 768), (1, 224)),
    'deit-s': ModelSpec('image', 'mmpretrain', _vit('deit-small', 384),
                        (1, 224)),
    'deit-t': ModelSpec('image', 'mmpretrain', _vit('deit-tiny', 192),
                        (1, 224)),
    'vit-b': ModelSpec('image', 'mmpretrain', _vit('base', 768), (1, 224)),
    'videosparseformer-t': ModelSpec('video', 'mmaction',
                                     _video_sparseformer('tiny', 512),
                                     (32, 224)),
    'videosparseformer-s': ModelSpec('video', 'mmaction',
                                     _video_sparseformer('small', 640),
                                     (32, 224)),
    'videosparseformer-b': ModelSpec('video', 'mmaction',
                                     _video_sparseformer('base', 768),
                                     (32, 224)),
    'videoswin-t': ModelSpec('video', 'mmaction', lambda t, r: _recognizer(
        dict(type='SwinTransformer3D', arch='tiny', pretrained=None,
             patch_size=(2, 4, 4), window_size=(8, 7, 7)),
        'I3DHead', 768), (32, 224)),
    'timesformer': ModelSpec('video', 'mmaction', lambda t, r: _recognizer(
        dict(type='TimeSformer', pretrained=None, num_frames=t, img_size=r,
             patch_size=16, embed_dims=768,
             attention_type='divided_space_time',
             norm_cfg=dict(type='LN', eps=1e-6)),
        'TimeSformerHead', 768), (8, 224)),
    'mvitv2-s': ModelSpec('video', 'mmaction', lambda t, r: _recognizer(
        dict(type='MViT', arch='small', spatial_size=r, temporal_size=t),
        'MViTHead', 768), (16, 224)),
    # built from their mmaction2 configs: fixed input sizes
    'x3d-m': ModelSpec('video', 'mmaction',
                       _from_mmaction_config(MMACTION_K400['x3d-m']),
                       (16, 256)),
    'uniformer-s': ModelSpec('video', 'mmaction',
                             _from_mmaction_config(
                                 MMACTION_K400['uniformer-s']), (16, 224)),
    'uniformerv2-b': ModelSpec('video', 'mmaction',
                               _from_mmaction_config(
                                   MMACTION_K400['uniformerv2-b']), (8, 224)),
    'videomae-b': ModelSpec('video', 'mmaction',
                            _from_mmaction_config(
                                MMACTION_K400['videomae-b']), (16, 224)),
}


def resolve_spec(name: str) -> ModelSpec:
    """A :data:`ZOO` name, or the path of an mmpretrain / mmaction2 config
    (its ``model``, without pretrained weights).

    Raises:
        KeyError: for an unknown name, listing the known ones.
    """
    if name in ZOO:
        return ZOO[name]
    if name.endswith('.py') and os.path.isfile(name):
        cfg = Config.fromfile(name)
        model = _config_model(name)
        video = cfg.get('default_scope') == 'mmaction'
        return ModelSpec('video' if video else 'image',
                         cfg.get('default_scope', 'mmpretrain'),
                         lambda t, r: model, (8 if video else 1, 224))
    raise KeyError(f'unknown model {name!r}: use a config file path or one '
                   f'of {", ".join(ZOO)}')


def build(name: str, frames: int, resolution: Resolution) -> nn.Module:
    """Build ``name`` (see :func:`resolve_spec`) for its input size."""
    spec = resolve_spec(name)
    with DefaultScope.overwrite_default_scope(spec.scope):
        model = MODELS.build(spec.build_cfg(frames, resolution))
    return model


def hw(resolution: Resolution) -> Tuple[int, int]:
    """``(height, width)`` of a side or a ``(height, width)`` pair."""
    if isinstance(resolution, int):
        return resolution, resolution
    h, w = resolution
    return int(h), int(w)


def input_shape(modality: str, frames: int,
                resolution: Resolution) -> List[int]:
    """One view without the batch axis: ``(3, H, W)`` or ``(3, T, H, W)``."""
    h, w = hw(resolution)
    if modality == 'image':
        return [3, h, w]
    return [3, frames, h, w]


# ------------------------------------------------------- test protocols --
@dataclass(frozen=True)
class TestProtocol:
    """How a config tests one video: ``clips x crops`` views of ``frames``
    frames at ``height x width``.

    Attributes:
        frames (int): frames per view (the sampler's ``clip_len``).
        clips (int): clips sampled along the video.
        crops (int): spatial views per clip (3 for ``ThreeCrop``).
        height (int): view height.
        width (int): view width.
        config (str): the config it was read from.
    """
    __test__ = False  # not a pytest class, despite the name
    frames: int
    clips: int
    crops: int
    height: int
    width: int
    config: str

    @property
    def views(self) -> int:
        return self.clips * self.crops


_CROPS = {'ThreeCrop': 3, 'CenterCrop': 1, 'TenCrop': 10}


def read_test_protocol(config: str, full_frame: bool = False,
                  aspect: float = 16 / 9) -> TestProtocol:
    """The test views of a recognition config, from its test pipeline.

    Args:
        config (str): an mmaction2-style config path.
        full_frame (bool): keep the whole frame instead of the config's
            crops: one view a clip, short side as the config resizes it.
        aspect (float): width / height of the videos, for views that keep the
            whole frame (16:9, the common Kinetics aspect).

    Raises:
        ValueError: naming the config, when its test pipeline has no frame
            sampler or no resize to a short side.
    """
    cfg = Config.fromfile(config)
    if 'test_dataloader' in cfg:
        pipeline = cfg.test_dataloader.dataset.pipeline
    else:
        pipeline = cfg.get('test_pipeline')
    steps = {t['type']: t for t in pipeline or []}
    sampler = steps.get('SampleFrames') or steps.get('UniformSample')
    resize = steps.get('Resize')
    if sampler is None or resize is None:
        raise ValueError(
            f'{config}: its test pipeline needs a SampleFrames (or '
            'UniformSample) step and a Resize step to a short side; found '
            f'{list(steps)}')
    short = max(resize['scale'])  # (-1, 224): short side 224
    crop = next((t for t in pipeline if t['type'] in _CROPS), None)
    if crop is None or full_frame:
        crops, h, w = 1, short, round(short * aspect)
    else:
        crops = _CROPS[crop['type']]
        h, w = hw(crop['crop_size'])
    return TestProtocol(frames=sampler['clip_len'],
                        clips=sampler.get('num_clips', 1), crops=crops,
                        height=h, width=w, config=config)


def published_top1(config: str) -> Tuple[Optional[float], Optional[str]]:
    """Kinetics-400 top-1 (%) that the model zoo next to an installed
    mmaction2 config lists for it (its ``metafile.yml``), and that file's
    path; ``(None, None)`` where there is none."""
    import yaml
    meta = osp.join(osp.dirname(config), 'metafile.yml')
    if not osp.isfile(meta):
        return None, None
    with open(meta) as f:
        models = yaml.safe_load(f).get('Models', [])
    name = osp.splitext(osp.basename(config))[0]
    for m in models:
        if m.get('Name') == name:
            for r in m.get('Results', []):
                if r.get('Dataset') == 'Kinetics-400':
                    return float(r['Metrics']['Top 1 Accuracy']), meta
    return None, None


# ---------------------------------------------------------------- memory --
def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def release_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: memory added at the peak inside the block, in bytes
    (``.peak``), on CUDA or (by sampling the RSS) on the CPU."""

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device = device
        self.interval = interval
        self.peak = 0

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        release_heap()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._max = _rss_bytes()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._max, _rss_bytes())
        self.peak = max(0, peak - self._base)
        return False


# ---------------------------------------------------------------- timing --
def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, x: torch.Tensor, mode: str, dtype: str,
              compile: bool = False,
              fullgraph: bool = False) -> Callable[[], None]:
    """One inference forward (``mode='infer'``) or one training step
    (forward, cross-entropy on random labels, backward, AdamW update) on
    ``x``, under autocast for ``bf16`` / ``fp16``; ``compile``: through
    ``torch.compile`` (``fullgraph``: without graph breaks)."""
    logits = Logits(model)
    if compile:
        logits = torch.compile(logits, fullgraph=fullgraph)
    amp = dtype != 'fp32'
    autocast = lambda: torch.autocast(  # noqa: E731
        x.device.type, dtype=DTYPES[dtype], enabled=amp)
    if mode == 'infer':
        model.eval()
        # torch.compile under inference_mode fails its own guards on some
        # models (mmpretrain's DropPath, torch 2.13): no_grad there
        no_grad = torch.no_grad if compile else torch.inference_mode

        def step():
            with no_grad(), autocast():
                logits(x)
        return step
    if mode != 'train':
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(x.device.type,
                                  enabled=dtype == 'fp16')
    labels = []  # drawn on the first call, below the model's class count

    def step():
        with autocast():
            out = logits(x).float()
            if not labels:
                labels.append(torch.randint(0, out.shape[-1], (x.shape[0], ),
                                            device=x.device))
            loss = F.cross_entropy(out, labels[0])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def time_step(step: Callable[[], None], device: torch.device, warmup: int,
              repeats: int) -> List[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def summarise(times: Sequence[float], batch: int) -> dict:
    """Median and quartiles of step times, and the throughput they give."""
    times = sorted(times)
    median = statistics.median(times)
    if len(times) >= 4:
        q1, _, q3 = statistics.quantiles(times, n=4)
    else:
        q1, q3 = times[0], times[-1]
    return dict(step_s=median, step_q1_s=q1, step_q3_s=q3,
                throughput=batch / median,
                throughput_spread=batch / q1 - batch / q3,
                repeats=len(times))


def prepare(model: nn.Module, shape: Sequence[int], batch: int, mode: str,
            dtype: str, device: torch.device, compile: bool = False):
    """A workload ready to time: ``(step, result)``, where ``result`` holds
    the batch, the memory and the seconds of its first call (made inside
    :class:`PeakMemory`; it also warms the workload up, and compiles it).

    With ``compile`` it tries ``torch.compile(fullgraph=True)`` first and
    falls back to graph breaks; ``result['fullgraph']`` says which ran and
    ``result['fullgraph_error']`` why the whole graph did not compile."""
    if dtype == 'fp16' and device.type != 'cuda':
        raise ValueError('fp16 is measured on a GPU only; use bf16 on a CPU')
    x = torch.randn(batch, *shape, device=device)
    info = {}
    for fullgraph in ((True, False) if compile else (False, )):
        try:
            with PeakMemory(device) as mem:
                start = time.perf_counter()
                step = make_step(model, x, mode, dtype, compile, fullgraph)
                step()
                _sync(device)
                first = time.perf_counter() - start
            break
        except Exception as e:
            if not (compile and fullgraph):
                raise
            # keep the first line of the reason: it names the breaking op
            info['fullgraph_error'] = str(e).strip().split('\n')[0][:200]
            torch._dynamo.reset()
    if compile:
        info['fullgraph'] = fullgraph
    return step, dict(batch=batch, peak_mem_mb=mem.peak / 2**20,
                      first_call_s=first, **info)


def time_interleaved(steps: Dict[str, Callable[[], None]],
                     device: torch.device, warmup: int = 1,
                     repeats: int = 5) -> Dict[str, List[float]]:
    """Seconds per call of each step, timed in rounds (one call of each step
    a round), so that a slow phase of a noisy machine hits every model alike
    rather than whichever happened to run then."""
    for step in steps.values():
        time_step(step, device, warmup, 0)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name] += time_step(step, device, 0, 1)
    return times


def measure(model: nn.Module, shape: Sequence[int], batch: int, mode: str,
            dtype: str, device: torch.device, warmup: int = 1,
            repeats: int = 5, compile: bool = False) -> dict:
    """Throughput (samples/s) and added peak memory of one workload alone."""
    step, result = prepare(model, shape, batch, mode, dtype, device, compile)
    result.update(summarise(time_step(step, device, warmup, repeats), batch))
    del step
    release_heap()
    return result


def warm_up_machine(seconds: float = 2.0) -> None:
    """Wake the thread pool and the clocks before the first measurement."""
    a = torch.randn(512, 512)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)


def machine_info(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = dict(python=platform.python_version(), torch=torch.__version__,
                platform=platform.platform(), device=str(device),
                cpu=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads())
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    info['cpu'] = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def profile_top_ops(model: nn.Module, shape: Sequence[int], top: int = 10,
                    repeats: int = 1) -> List[dict]:
    """Where one inference forward of batch 1 spends its time: the ``top``
    operators by self CPU time (ms a call, share of the total), from
    ``torch.profiler`` over ``repeats`` calls after one warm-up call."""
    from torch.profiler import ProfilerActivity, profile
    logits = Logits(model.eval())
    x = torch.randn(1, *shape)
    with torch.inference_mode():
        logits(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                logits(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events = sorted(events, key=lambda e: e.self_cpu_time_total,
                    reverse=True)[:top]
    return [dict(op=e.key, ms=e.self_cpu_time_total / 1e3 / repeats,
                 share=e.self_cpu_time_total / total, calls=e.count // repeats)
            for e in events]


def flops_and_params(model: nn.Module, shape: Sequence[int]) -> dict:
    """GFLOPs per view (paper and full conventions) and parameters; None
    where the tracer cannot follow a peer.

    One trace serves both conventions: "paper" is "full" without the
    batched matmuls of adaptive mixing (the same numbers as
    :func:`complexity.complexity`, which traces once for each)."""
    try:
        full = flop_analyzers(model, shape)['full']
        total = full.total()
        return dict(params=sum(p.numel() for p in model.parameters()),
                    full=total / 1e9,
                    paper=(total - full.by_operator().get('baddbmm', 0)) /
                    1e9)
    except Exception as e:  # a peer the tracer cannot follow
        return dict(params=sum(p.numel() for p in model.parameters()),
                    paper=None, full=None, flops_error=repr(e)[:200])
