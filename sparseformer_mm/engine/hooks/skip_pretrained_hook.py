"""Resume / load_from do not load the backbone's image weights first."""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, find_latest_checkpoint

from ...utils.model_utils import unwrap_model


def _is_pretrained(init_cfg) -> bool:
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def clear_pretrained(model) -> List[str]:
    """Drop every module's own pretrained initialisation, in place.

    A module's ``pretrained`` attribute (a checkpoint path its
    ``init_weights`` loads, as in ``VideoSparseFormer`` and mmaction2's
    backbones) becomes None, and ``init_cfg`` entries of type
    ``Pretrained`` are removed; the other ``init_cfg`` entries (random
    initialisers) stay.

    Returns:
        list[str]: What was cleared, as ``'<module>.pretrained=<path>'`` or
        ``'<module>.init_cfg=<checkpoint>'``.
    """
    cleared = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        pretrained = getattr(module, 'pretrained', None)
        if isinstance(pretrained, str) and pretrained:
            module.pretrained = None
            cleared.append(f'{prefix}pretrained={pretrained}')
        init_cfg = getattr(module, 'init_cfg', None)
        if _is_pretrained(init_cfg):
            module.init_cfg = None
            cleared.append(f"{prefix}init_cfg={init_cfg.get('checkpoint')}")
        elif isinstance(init_cfg, (list, tuple)) and any(
                map(_is_pretrained, init_cfg)):
            cleared += [f"{prefix}init_cfg={c.get('checkpoint')}"
                        for c in init_cfg if _is_pretrained(c)]
            module.init_cfg = [c for c in init_cfg if not _is_pretrained(c)]
    return cleared


def checkpoint_to_load(runner) -> Optional[str]:
    """The checkpoint ``runner.train()`` will resume from or load, if any
    (the same choice as ``Runner.load_or_resume``)."""
    if getattr(runner, '_has_loaded', False):
        return None
    if runner._resume and runner._load_from is None:
        # auto resume: nothing to resume in a new work_dir
        return find_latest_checkpoint(runner.work_dir)
    return runner._load_from


@HOOKS.register_module()
class SkipPretrainedOnLoadHook(Hook):
    """Do not load the backbone's ``pretrained`` weights when training
    resumes or starts from ``load_from``.

    ``Runner.train()`` first initialises the model (``init_weights``, which
    reads ``model.backbone.pretrained`` or an ``init_cfg`` of type
    ``Pretrained``, e.g. the image checkpoint a video model is inflated
    from) and then loads the checkpoint, which overwrites those weights
    anyway. So a resumed run would read, and require, a file whose weights
    it throws away: a run whose image checkpoint was moved or deleted could
    not resume. In ``before_run``, which mmengine calls before
    ``init_weights`` and the checkpoint loading, this hook clears those
    settings when a checkpoint will be loaded, and logs what it skipped.
    Parameters the checkpoint lacks keep their default initialisation.

    It acts in training only (``Runner.val()`` / ``test()`` do not
    initialise weights) and does nothing for a run from scratch, including
    ``resume=True`` in a work_dir without a checkpoint.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # not Runner.train(): nothing will be initialised
        checkpoint = checkpoint_to_load(runner)
        if checkpoint is None:
            return
        cleared = clear_pretrained(unwrap_model(runner.model))
        if cleared:
            action = 'resumes from' if runner._resume else 'loads'
            runner.logger.info(
                f'Training {action} {checkpoint}, which holds the weights: '
                f'skipped the pretrained initialisation '
                f"({', '.join(cleared)}).")
