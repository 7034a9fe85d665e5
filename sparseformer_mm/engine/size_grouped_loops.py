"""Validation and test loops that never pad inputs of different sizes.

Full-frame testing (``Resize(scale=(-1, 224))`` and no crop) keeps every
video's aspect ratio, so a batch can hold views of different sizes: a 16:9
video gives 224x398, a 4:3 one 224x299, a portrait one 398x224. mmaction2's
``ActionDataPreprocessor`` stacks a batch with mmengine's ``stack_batch``,
which zero-pads every input to the largest height and width in the batch.
SparseFormer places its RoIs in coordinates relative to the whole input, so
a padded video is seen with black bars and gets another prediction than it
gets alone. These loops split such a batch into groups of one input size
and run each group as its own batch: the predictions are those of
``batch_size=1``, and a batch of one size (e.g. after
``tools/data/kinetics/resize_videos.py``) runs unchanged, in one step.
"""
from collections import OrderedDict
from typing import Dict, List, Sequence

from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import TestLoop, ValLoop


def _input_size(x) -> tuple:
    shape = getattr(x, 'shape', None)
    return tuple(int(v) for v in shape) if shape is not None else ()


def size_groups(data_batch) -> List[List[int]]:
    """The sample indices of ``data_batch`` (a collated dict with a list of
    ``inputs``) grouped by input shape, in order of first appearance;
    samples keep their order within a group.

    A batch that is not such a dict, or whose inputs share one shape, is
    one group.
    """
    inputs = data_batch.get('inputs') if isinstance(data_batch, dict) \
        else None
    if not isinstance(inputs, (list, tuple)):
        return [list(range(len(inputs)))] if inputs is not None else [[]]
    groups: Dict[tuple, List[int]] = OrderedDict()
    for i, x in enumerate(inputs):
        groups.setdefault(_input_size(x), []).append(i)
    return list(groups.values())


def take_samples(data_batch: dict, idx: Sequence[int]) -> dict:
    """The samples ``idx`` of a collated batch: per-sample lists are
    indexed, anything else is shared."""
    n = len(data_batch['inputs'])

    def take(value):
        if isinstance(value, (list, tuple)) and len(value) == n:
            return [value[i] for i in idx]
        return value

    return {k: take(v) for k, v in data_batch.items()}


def split_by_size(data_batch) -> List[dict]:
    """``data_batch`` as batches whose inputs share one shape (see
    :func:`size_groups`); a batch of one shape is returned whole."""
    groups = size_groups(data_batch)
    if len(groups) <= 1:
        return [data_batch]
    return [take_samples(data_batch, idx) for idx in groups]


class _Outputs:
    """Stands in for the evaluator while the groups of one batch run: it
    keeps their outputs, so that the real evaluator gets the whole batch
    once, in the batch's (the dataset's) order."""

    def __init__(self):
        self.samples: list = []

    def process(self, data_samples, data_batch=None) -> None:
        self.samples.extend(data_samples)


class _SizeGrouped:
    """The ``run_iter`` of both loops: one ``run_iter`` of the parent loop
    per input size (hooks and the model step each see one group); the
    evaluator then sees the whole batch, in its order, so metrics and a
    dump (``DumpResults``, ``tools/test.py --dump``) list the results in
    dataset order, as an ungrouped loop does."""

    _said = False

    def run_iter(self, idx, data_batch: Sequence[dict]):
        groups = size_groups(data_batch)
        if len(groups) <= 1:
            return super().run_iter(idx, data_batch)
        batches = [take_samples(data_batch, g) for g in groups]
        if not self._said:
            self._said = True
            sizes = [tuple(b['inputs'][0].shape[-2:]) for b in batches]
            print_log(
                f'{type(self).__name__}: batch {idx} holds inputs of '
                f'{len(batches)} sizes (H x W {sizes}); each size runs as '
                'its own batch, unpadded (said once per run)', 'current')
        evaluator, kept = self.evaluator, _Outputs()
        # The parent's run_iter (hooks, autocast, losses) runs unchanged
        # per group; only its call to the evaluator is held back.
        self.evaluator = kept
        try:
            for batch in batches:
                super().run_iter(idx, batch)
        finally:
            self.evaluator = evaluator
        order = [i for g in groups for i in g]
        if len(kept.samples) != len(order):
            raise RuntimeError(
                f'{type(self).__name__}: the model returned '
                f'{len(kept.samples)} results for a batch of {len(order)} '
                'samples, so they cannot be matched to the samples')
        outputs = [None] * len(order)
        for i, sample in zip(order, kept.samples):
            outputs[i] = sample
        evaluator.process(data_samples=outputs, data_batch=data_batch)


@LOOPS.register_module()
class SizeGroupedValLoop(_SizeGrouped, ValLoop):
    """mmengine's ``ValLoop`` that runs the inputs of each size in a batch
    as a batch of their own, instead of letting the data preprocessor
    zero-pad them to one size. For full-frame validation of videos whose
    aspect ratios differ: ``val_cfg = dict(type='SizeGroupedValLoop')``.
    Takes ``ValLoop``'s arguments."""


@LOOPS.register_module()
class SizeGroupedTestLoop(_SizeGrouped, TestLoop):
    """mmengine's ``TestLoop`` that runs the inputs of each size in a batch
    as a batch of their own, instead of letting the data preprocessor
    zero-pad them to one size. For full-frame testing of videos whose
    aspect ratios differ: ``test_cfg = dict(type='SizeGroupedTestLoop')``.
    Takes ``TestLoop``'s arguments. The evaluator (and a dump,
    ``--dump``) gets the results in dataset order.
    """
