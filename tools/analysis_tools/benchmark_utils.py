"""Throughput, latency and memory of SparseFormer and dense peers, measured
side by side in one process: the measuring parts of ``benchmark.py`` beside
it.

The models are built from the installed mmpretrain / mmaction2 registries
without weights (speed does not depend on them): SparseFormer and
VideoSparseFormer T/S/B next to Swin-T, DeiT-S and ViT-B for images and Video
Swin-T, TimeSformer and MViTv2-S for video. A config file path serves as a
model name too, so any experiment can be measured the same way.

Memory is what the workload adds on top of the built model: on a GPU
``max_memory_allocated`` minus the allocation before it; on a CPU the peak
resident set size (sampled every few milliseconds) minus the resident size
before it, after handing freed heap back to the system.
"""
import ctypes
import gc
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from complexity import _Logits, complexity

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}


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
        model = cfg.model.to_dict()
        if model.get('backbone', {}).get('pretrained'):
            model['backbone']['pretrained'] = None
        model.pop('init_cfg', None)
        video = cfg.get('default_scope') == 'mmaction'
        return ModelSpec('video' if video else 'image',
                         cfg.get('default_scope', 'mmpretrain'),
                         lambda t, r: model, (8 if video else 1, 224))
    raise KeyError(f'unknown model {name!r}: use a config file path or one '
                   f'of {", ".join(ZOO)}')


def build(name: str, frames: int, resolution: int) -> nn.Module:
    """Build ``name`` (see :func:`resolve_spec`) for its input size."""
    spec = resolve_spec(name)
    with DefaultScope.overwrite_default_scope(spec.scope):
        model = MODELS.build(spec.build_cfg(frames, resolution))
    return model


def input_shape(modality: str, frames: int, resolution: int) -> List[int]:
    """One view without the batch axis: ``(3, H, W)`` or ``(3, T, H, W)``."""
    if modality == 'image':
        return [3, resolution, resolution]
    return [3, frames, resolution, resolution]


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
              compile: bool = False) -> Callable[[], None]:
    """One inference forward (``mode='infer'``) or one training step
    (forward, cross-entropy on random labels, backward, AdamW update) on
    ``x``, under autocast for ``bf16`` / ``fp16``."""
    logits = _Logits(model)
    if compile:
        logits = torch.compile(logits)
    amp = dtype != 'fp32'
    autocast = lambda: torch.autocast(  # noqa: E731
        x.device.type, dtype=DTYPES[dtype], enabled=amp)
    if mode == 'infer':
        model.eval()

        def step():
            with torch.inference_mode(), autocast():
                logits(x)
        return step
    if mode != 'train':
        raise ValueError(f"mode must be 'infer' or 'train', got {mode!r}")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(x.device.type,
                                  enabled=dtype == 'fp16')
    labels = torch.randint(0, 10, (x.shape[0], ), device=x.device)

    def step():
        with autocast():
            loss = F.cross_entropy(logits(x).float(), labels)
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
    the batch and the memory of its first call (made inside
    :class:`PeakMemory`; it also warms the workload up)."""
    if dtype == 'fp16' and device.type != 'cuda':
        raise ValueError('fp16 is measured on a GPU only; use bf16 on a CPU')
    x = torch.randn(batch, *shape, device=device)
    with PeakMemory(device) as mem:
        step = make_step(model, x, mode, dtype, compile)
        step()
    return step, dict(batch=batch, peak_mem_mb=mem.peak / 2**20)


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


def flops_and_params(model: nn.Module, shape: Sequence[int]) -> dict:
    """GFLOPs per view (paper and full conventions) and parameters; None
    where the tracer cannot follow a peer."""
    try:
        return complexity(model, shape)
    except Exception as e:  # a peer the tracer cannot follow
        return dict(params=sum(p.numel() for p in model.parameters()),
                    paper=None, full=None, flops_error=repr(e)[:200])
