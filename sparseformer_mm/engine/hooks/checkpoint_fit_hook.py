"""load_from / resume refuse a checkpoint that does not fit the model."""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...checkpoint_fit import CheckpointMismatchError, checkpoint_fit_error
from ...utils.model_utils import unwrap_model
from .skip_pretrained_hook import checkpoint_to_load


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Fail before a run when its checkpoint does not fit the model.

    mmengine's Runner loads ``load_from`` (and ``resume``) non-strictly: a
    checkpoint of another arch, another ``replicates`` or an image
    checkpoint given to a video model loads partly, with "size mismatch"
    warnings, and training, ``val`` or ``test`` go on with a mostly random
    model. In ``before_run`` (called before the Runner loads anything, in
    ``train()``, ``val()`` and ``test()``) this hook reads the file
    weights-only and raises :class:`CheckpointMismatchError` with the
    message the backbone gives for ``pretrained`` (``Set
    model.backbone.replicates=8``, ``Set model.backbone.arch=small``,
    inflate an image checkpoint with
    ``tools/model_converters/inflate_to_video.py``, ``set
    model.cls_head.num_classes=400``).

    A partial load stays possible on request, e.g. a new head for other
    classes: ``allow_partial=True`` here or a top-level ``partial_load =
    True`` in the config (``--cfg-options partial_load=True``;
    ``tools/test.py --partial-load``) logs the message as a warning and
    lets mmengine load what fits.

    Args:
        allow_partial (bool): Warn instead of raising. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: bool = False):
        self.allow_partial = allow_partial

    def before_run(self, runner) -> None:
        path = checkpoint_to_load(runner)
        if not path or not osp.isfile(path):
            return  # nothing to load, a URL, or missing: mmengine says so
        try:
            msg = checkpoint_fit_error(unwrap_model(runner.model), path)
        except ValueError as e:  # not a checkpoint at all
            raise CheckpointMismatchError(str(e)) from None
        if msg is None:
            return
        cfg = getattr(runner, 'cfg', None) or {}
        if self.allow_partial or cfg.get('partial_load', False):
            runner.logger.warning(f'{msg.split(" To load only")[0]} '
                                  'partial_load is set: loading only the '
                                  'weights that fit.')
            return
        raise CheckpointMismatchError(msg)
