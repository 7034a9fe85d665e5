"""Warn when a batch is padded far beyond its smallest input."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _hw(x) -> Optional[tuple]:
    shape = getattr(x, 'shape', None)
    return tuple(int(v) for v in shape[-2:]) if shape is not None \
        and len(shape) >= 3 else None


def padding_factor(inputs: Sequence) -> float:
    """Area of the padded batch (the largest height x the largest width, as
    the data preprocessors pad) over the area of its smallest input."""
    sizes = [s for s in map(_hw, inputs) if s]
    if len(sizes) < 2:
        return 1.0
    padded = max(h for h, _ in sizes) * max(w for _, w in sizes)
    return padded / max(1, min(h * w for h, w in sizes))


@HOOKS.register_module()
class BatchPaddingHook(Hook):
    """Warn when inputs of different sizes make a padded batch much larger
    than its inputs.

    mmaction2's and mmpretrain's data preprocessors zero-pad the inputs of
    a batch to the largest height and width among them. A pipeline without
    a resize (e.g. the demo configs, whose clips share one size) then pads
    every clip to one odd video's size: a single 1080p clip among 64x64
    ones makes a 1080x1920 batch, hundreds of times the compute, and the
    model sees mostly zeros. This hook compares the padded area with the
    smallest input's and warns, naming the largest input's file, when the
    factor exceeds ``max_factor`` (at most ``max_warnings`` times).

    Args:
        max_factor (float): Padded area / smallest input area above which
            to warn. Defaults to 4.
        max_warnings (int): Warnings per run. Defaults to 5.
    """

    priority = 'LOW'

    def __init__(self, max_factor: float = 4.0, max_warnings: int = 5):
        if max_factor < 1:
            raise ValueError(f'max_factor must be >= 1, got {max_factor}')
        self.max_factor = max_factor
        self.max_warnings = max_warnings
        self._warned = 0

    def _check(self, runner, batch, mode: str, idx: int) -> None:
        if self._warned >= self.max_warnings or not isinstance(batch, dict):
            return
        inputs = batch.get('inputs')
        if not isinstance(inputs, (list, tuple)):
            return  # already a stacked tensor: nothing was padded
        factor = padding_factor(inputs)
        if factor <= self.max_factor:
            return
        sizes = [_hw(x) for x in inputs]
        big = max(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1]
                  if sizes[i] else 0)
        samples = batch.get('data_samples') or []
        meta = getattr(samples[big], 'metainfo', {}) if big < len(
            samples) else {}
        name = meta.get('filename') or meta.get('img_path') or f'#{big}'
        if meta.get('img_path'):  # an image (mmpretrain) pipeline
            fix = ("(e.g. dict(type='ResizeEdge', scale=256, edge='short') "
                   'then a crop)')
        else:
            fix = ("(e.g. dict(type='Resize', scale=(-1, 256)) then a crop) "
                   'or resize the videos (tools/data/kinetics/'
                   'resize_videos.py)')
        self._warned += 1
        runner.logger.warning(
            f'{mode} batch {idx}: inputs of sizes {sorted(set(sizes))} are '
            f'zero-padded to one {max(s[0] for s in sizes if s)}x'
            f'{max(s[1] for s in sizes if s)} batch, {factor:.0f}x the '
            f'smallest input (largest: {name}). Resize in the pipeline '
            f'{fix}.')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'train', batch_idx)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'val', batch_idx)

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'test', batch_idx)
