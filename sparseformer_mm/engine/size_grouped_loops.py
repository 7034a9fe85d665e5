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


def split_by_size(data_batch) -> List[dict]:
    """``data_batch`` (a collated dict with a list of ``inputs``) as batches
    whose inputs share one shape, in order of first appearance; samples keep
    their order within a group.

    A batch that is not such a dict, or whose inputs share one shape, is
    returned whole (one element), so nothing changes for it.
    """
    if not isinstance(data_batch, dict) or not isinstance(
            data_batch.get('inputs'), (list, tuple)):
        return [data_batch]
    inputs = data_batch['inputs']
    groups: Dict[tuple, List[int]] = OrderedDict()
    for i, x in enumerate(inputs):
        groups.setdefault(_input_size(x), []).append(i)
    if len(groups) <= 1:
        return [data_batch]
    n = len(inputs)

    def take(value, idx):
        # per-sample lists are split; anything else is shared
        if isinstance(value, (list, tuple)) and len(value) == n:
            return [value[i] for i in idx]
        return value

    return [{k: take(v, idx) for k, v in data_batch.items()}
            for idx in groups.values()]


class _SizeGrouped:
    """The ``run_iter`` of both loops: one ``run_iter`` of the parent loop
    per input size (hooks, model step and evaluator each see one group)."""

    _said = False

    def run_iter(self, idx, data_batch: Sequence[dict]):
        batches = split_by_size(data_batch)
        if len(batches) > 1 and not self._said:
            self._said = True
            sizes = [tuple(b['inputs'][0].shape[-2:]) for b in batches]
            print_log(
                f'{type(self).__name__}: batch {idx} holds inputs of '
                f'{len(batches)} sizes (H x W {sizes}); each size runs as '
                'its own batch, unpadded (said once per run)', 'current')
        for batch in batches:
            super().run_iter(idx, batch)


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
    Takes ``TestLoop``'s arguments.

    Results reach the evaluator group by group, so within a batch of mixed
    sizes a dump (``--dump``) lists them in that order; metrics such as
    ``AccMetric`` keep each result's own label and are unaffected.
    """
