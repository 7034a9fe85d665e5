"""Checks labels before the run; counts, logs and limits bad samples;
names inputs and scores that are not finite."""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from ...datasets.checked_dataset import (AnnotationError, bad_samples_of,
                                         sample_path_of)
from ...utils.model_utils import unwrap_model


class BadDataError(RuntimeError):
    """More bad samples in an epoch than ``max_bad_fraction`` allows."""


def _head_num_classes(model) -> Optional[int]:
    model = unwrap_model(model)
    for name in ('cls_head', 'head'):
        n = getattr(getattr(model, name, None), 'num_classes', None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def _leaf_datasets(dataset) -> list:
    """The datasets under wrappers (Repeat/ClassBalanced/Concat, ours)."""
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in _leaf_datasets(sub)]
    inner = getattr(dataset, '__dict__', {}).get('dataset')
    if inner is not None:
        return _leaf_datasets(inner)
    return [dataset]


def _non_finite(x) -> int:
    """How many values of ``x`` are NaN / Inf (0 for integer tensors, e.g.
    decoded uint8 frames, which cannot hold them)."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return int((~torch.isfinite(x)).sum())
    return 0


def _name(samples, i: int, mode: str, idx: int) -> str:
    path = sample_path_of(samples[i]) if i < len(samples) else None
    return path or f'{mode} batch {idx} sample #{i}'


def _listing(names: List[str]) -> str:
    return ', '.join(names[:10]) + (
        f' and {len(names) - 10} more' if len(names) > 10 else '')


def _check_generic_labels(dataset, num_classes: int) -> None:
    if not hasattr(dataset, 'get_data_info'):
        return
    bad = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        label = info.get('gt_label', info.get('label'))
        if label is None:
            continue
        labels = label if isinstance(label, (list, tuple)) else [label]
        try:
            labels = [int(x) for x in labels]
        except (TypeError, ValueError):
            continue  # one-hot tensors etc.
        if any(x >= num_classes for x in labels):
            path = info.get('img_path') or info.get('filename') or ''
            bad.append(f'sample {i} {path}: label {max(labels)}')
    if bad:
        ann = getattr(dataset, 'ann_file', '')
        raise AnnotationError(
            f'{len(bad)} label(s) in {ann or type(dataset).__name__} are out '
            f'of range for the head\'s num_classes={num_classes} (valid: '
            f'0..{num_classes - 1}):\n' + '\n'.join(bad[:10]) +
            '\nFix the list or set num_classes in the head.')


@HOOKS.register_module()
class DataCheckHook(Hook):
    """Fail early on bad labels, and report bad samples that were replaced.

    * ``before_run``: every built train / val / test dataset's labels are
      checked against the model head's ``num_classes`` (``cls_head`` or
      ``head``); :class:`CheckedVideoDataset` names the ``file:line``.
    * Every iteration: replaced samples (``metainfo['bad_samples']``, set by
      :class:`CheckedVideoDataset` / :class:`SkipBadSamples` in the
      dataloader workers) are read from the batch in the main process. Each
      path is logged once per run; each epoch ends with a summary; more
      distinct bad paths in one epoch than ``max_bad_fraction`` of the
      epoch's samples (this rank's share) raise :class:`BadDataError`
      naming them, before the model sees the batch.

    * Inputs and scores that are not finite: an input with NaN / Inf
      values (e.g. a float TIFF image) is named in a warning when its batch
      arrives (train, val and test; in training the loss then turns NaN and
      ``AmpOrFp32OptimWrapper`` refuses or skips it). In val / test, where
      nothing else would stop, a sample whose scores are NaN / Inf is recorded, and the
      epoch ends with a warning naming those files and saying what the
      metrics are then worth: NaN scores from finite inputs mean broken
      weights. Warnings, not errors: the other samples' results are kept
      and the files named, so nothing is lost.

    Args:
        max_bad_fraction (float): Allowed fraction of bad samples per epoch;
            0 makes any bad sample an error. Defaults to 0.01.
        check_labels (bool): Run the label check. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, max_bad_fraction: float = 0.01,
                 check_labels: bool = True):
        if not 0 <= max_bad_fraction <= 1:
            raise ValueError('max_bad_fraction must be in [0, 1], got '
                             f'{max_bad_fraction}')
        self.max_bad_fraction = max_bad_fraction
        self.check_labels = check_labels
        self._logged = set()
        self._epoch: Dict[str, Dict[str, str]] = {}
        self.totals: Dict[str, int] = {}
        # mode -> {name: kind}, kind 'input' (non-finite input) or 'score'
        # (non-finite scores from a finite input)
        self._non_finite: Dict[str, Dict[str, str]] = {}

    # -- labels ---------------------------------------------------------------
    def before_run(self, runner) -> None:
        if not self.check_labels:
            return
        num_classes = _head_num_classes(runner.model)
        if num_classes is None:
            return
        for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
            if not isinstance(loop, BaseLoop):
                continue  # not built: this run does not use it
            for ds in _leaf_datasets(loop.dataloader.dataset):
                if hasattr(ds, 'check_labels'):
                    ds.check_labels(num_classes)
                else:
                    _check_generic_labels(ds, num_classes)

    # -- non-finite inputs and scores ---------------------------------------
    def _check_inputs(self, runner, mode: str, idx: int, data_batch) -> None:
        if not isinstance(data_batch, dict):
            return
        inputs = data_batch.get('inputs')
        if not isinstance(inputs, (list, tuple, torch.Tensor)):
            return
        samples = data_batch.get('data_samples') or []
        seen = self._non_finite.setdefault(mode, {})
        for i, x in enumerate(inputs):
            bad = _non_finite(x)
            if not bad:
                continue
            name = _name(samples, i, mode, idx)
            seen[name] = 'input'
            if ('non-finite', name) not in self._logged:  # once per run
                self._logged.add(('non-finite', name))
                runner.logger.warning(
                    f'{mode} input {name} has {bad} non-finite value(s) '
                    f'(NaN / Inf) of {x.numel()}: its scores are NaN and its '
                    'predicted label is meaningless. Fix or remove the file '
                    '(a float image with NaN pixels?).')

    def _check_scores(self, mode: str, idx: int, data_batch,
                      outputs) -> None:
        seen = self._non_finite.setdefault(mode, {})
        samples = (data_batch.get('data_samples') if isinstance(
            data_batch, dict) else None) or []
        for i, out in enumerate(outputs or []):
            score = getattr(out, 'pred_score', None)
            if not isinstance(score, torch.Tensor) or not _non_finite(score):
                continue
            name = sample_path_of(out) or _name(samples, i, mode, idx)
            seen.setdefault(name, 'score')

    def _report_non_finite(self, runner, mode: str, loader) -> None:
        seen = self._non_finite.get(mode, {})
        if not seen:
            return
        inputs = [n for n, k in seen.items() if k == 'input']
        scores = [n for n, k in seen.items() if k == 'score']
        total = self._epoch_size(loader)
        parts = []
        if inputs:
            parts.append(f'{len(inputs)} of {total} samples have non-finite '
                         f'inputs (NaN / Inf): {_listing(inputs)}')
        if scores:
            parts.append(
                f'{len(scores)} of {total} samples scored NaN / Inf although '
                f'their inputs are finite: {_listing(scores)}; the model '
                'itself gives non-finite outputs, so its weights are broken '
                '(e.g. a diverged training, or a checkpoint with NaN / Inf '
                'values)')
        runner.logger.warning(
            f'{mode}: ' + '; '.join(parts) + f'. The {mode} metrics count '
            'these samples with meaningless predicted labels' +
            (' and do not measure the model.' if scores else '.'))

    # -- bad samples --------------------------------------------------------
    def _begin(self, mode: str) -> None:
        self._epoch[mode] = {}
        self._non_finite[mode] = {}

    def _collect(self, runner, mode: str, data_batch, loader,
                 idx: int = 0) -> None:
        self._check_inputs(runner, mode, idx, data_batch)
        samples = data_batch.get('data_samples') \
            if isinstance(data_batch, dict) else None
        if not samples:
            return
        seen = self._epoch.setdefault(mode, {})
        new = False
        for s in samples:
            for path, reason in bad_samples_of(s):
                if path not in seen:
                    seen[path] = reason
                    new = True
                if path not in self._logged:
                    self._logged.add(path)
                    runner.logger.warning(
                        f'bad {mode} sample replaced: {path} ({reason})')
        if new:
            self._check_limit(mode, seen, loader)

    @staticmethod
    def _epoch_size(loader) -> int:
        try:
            return len(loader.sampler)
        except TypeError:
            return len(loader.dataset)

    def _check_limit(self, mode: str, seen: Dict[str, str], loader) -> None:
        total = max(1, self._epoch_size(loader))
        if len(seen) <= self.max_bad_fraction * total:
            return
        listing = '\n'.join(f'  {p}: {r}' for p, r in list(seen.items())[:20])
        more = f'\n  ... and {len(seen) - 20} more' if len(seen) > 20 else ''
        raise BadDataError(
            f'{len(seen)} of {total} {mode} samples this epoch could not be '
            f'loaded ({len(seen) / total:.1%}), more than max_bad_fraction='
            f'{self.max_bad_fraction} allows:\n{listing}{more}\nFix or remove '
            'them from the dataset (for videos, tools/data/kinetics/'
            'check_videos.py lists every unreadable one), or raise '
            'DataCheckHook(max_bad_fraction=...) in custom_hooks.')

    def _end(self, runner, mode: str, loader) -> None:
        seen = self._epoch.get(mode, {})
        self.totals[mode] = self.totals.get(mode, 0) + len(seen)
        if seen:
            total = self._epoch_size(loader)
            # after_train_epoch runs before the loop counts the epoch
            epoch = runner.epoch + 1 if mode == 'train' else runner.epoch
            runner.logger.warning(
                f'{mode} epoch {epoch}: {len(seen)} of {total} samples '
                f'were bad and replaced: {sorted(seen)}')

    def bad_this_epoch(self, mode: str = 'train') -> List[Tuple[str, str]]:
        """``(path, reason)`` of the bad samples seen so far this epoch."""
        return list(self._epoch.get(mode, {}).items())

    # mmengine calls these for every mode (train / val / test)
    @staticmethod
    def _loader(runner, mode: str):
        return getattr(runner, f'{mode}_loop').dataloader

    def _before_epoch(self, runner, mode: str = 'train') -> None:
        self._begin(mode)

    def _before_iter(self, runner, batch_idx, data_batch=None,
                     mode: str = 'train') -> None:
        self._collect(runner, mode, data_batch, self._loader(runner, mode),
                      batch_idx)

    def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None,
                    mode: str = 'train') -> None:
        if mode != 'train':
            self._check_scores(mode, batch_idx, data_batch, outputs)

    def _after_epoch(self, runner, mode: str = 'train') -> None:
        self._end(runner, mode, self._loader(runner, mode))
        if mode != 'train':
            self._report_non_finite(runner, mode, self._loader(runner, mode))


__all__ = ['DataCheckHook', 'BadDataError']
