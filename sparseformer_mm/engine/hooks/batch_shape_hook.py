"""Warn, naming the files, when a batch of inputs of different sizes is
zero-padded."""
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...datasets.checked_dataset import sample_path_of


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


def _name(samples, i: int) -> str:
    path = sample_path_of(samples[i]) if i < len(samples) else None
    return path or f'#{i} of the batch'


@HOOKS.register_module()
class BatchPaddingHook(Hook):
    """Warn when the inputs of a batch differ in size, so that the data
    preprocessor zero-pads them, naming the padded files.

    mmaction2's and mmpretrain's data preprocessors zero-pad the inputs of
    a batch to the largest height and width among them. SparseFormer
    places its RoIs relative to the whole (padded) input, so a padded
    sample is seen beside black bars and scores differently from the same
    sample alone, however little it is padded
    (``tests/engine/test_batch_shape_hook.py`` measures it). A pipeline
    without a resize to one size (e.g. the demo configs, whose generated
    clips share one size) therefore changes the scores of every sample in a
    batch with one odd file. The first padded batch of each mode (train,
    val, test) is named in a warning: the padded files, their sizes, the
    padded size and what to change; the files come from the data samples'
    metainfo, which ``CheckedVideoDataset`` and ``SkipBadSamples`` fill.

    Args:
        max_factor (float): Padded area / smallest input area at or below
            which not to warn. Defaults to 1 (warn on any padding).
        max_warnings (int): Warnings per mode and run. Defaults to 1.
    """

    priority = 'LOW'

    def __init__(self, max_factor: float = 1.0, max_warnings: int = 1):
        if max_factor < 1:
            raise ValueError(f'max_factor must be >= 1, got {max_factor}')
        self.max_factor = max_factor
        self.max_warnings = max_warnings
        self._warned: Dict[str, int] = {}

    def _check(self, runner, batch, mode: str, idx: int) -> None:
        if self._warned.get(mode, 0) >= self.max_warnings \
                or not isinstance(batch, dict):
            return
        inputs = batch.get('inputs')
        if not isinstance(inputs, (list, tuple)):
            return  # already a stacked tensor: nothing was padded
        factor = padding_factor(inputs)
        if factor <= self.max_factor:
            return
        sizes = [_hw(x) for x in inputs]
        padded = (max(s[0] for s in sizes if s), max(s[1] for s in sizes if s))
        samples = batch.get('data_samples') or []
        names = [f'{_name(samples, i)} ({s[0]}x{s[1]})'
                 for i, s in enumerate(sizes) if s and s != padded]
        listing = ', '.join(names[:5]) + (
            f' and {len(names) - 5} more' if len(names) > 5 else '')
        if any(getattr(s, 'metainfo', {}).get('img_path') for s in samples):
            fix = ("e.g. dict(type='ResizeEdge', scale=256, edge='short') "
                   'then a crop')
        else:
            fix = ("e.g. dict(type='Resize', scale=(-1, 256)) then a crop, "
                   'or resize the videos (tools/data/kinetics/'
                   'resize_videos.py)')
        if mode != 'train':
            loop = 'SizeGroupedValLoop' if mode == 'val' \
                else 'SizeGroupedTestLoop'
            fix += (f"; or set {mode}_cfg = dict(type='{loop}'), which runs "
                    'each size as its own batch, unpadded')
        self._warned[mode] = self._warned.get(mode, 0) + 1
        once = f' (Said once per run for {mode}.)' \
            if self.max_warnings == 1 else ''
        runner.logger.warning(
            f'{mode} batch {idx}: inputs of sizes {sorted(set(sizes))} are '
            f'zero-padded to {padded[0]}x{padded[1]} ({factor:.2g}x the '
            'smallest area), which changes the scores of the padded ones '
            '(SparseFormer places its RoIs relative to the padded input): '
            f'{listing}. Resize to one size in the pipeline ({fix}).{once}')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'train', batch_idx)

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'val', batch_idx)

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._check(runner, data_batch, 'test', batch_idx)
