"""What a run loads: the checkpoint, that it fits, and the resume lr."""
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from ...checkpoint_fit import (CheckpointMismatchError, checkpoint_fit_error,
                               pretrained_init_error, without_partial_hint)
from ...utils.model_utils import unwrap_model
from ..checkpoint_load import POINTER, checkpoint_to_load, read_pointer


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


def _load_arguments(runner):
    """``(load_from, resume, already loaded, training)`` of ``runner``.

    mmengine 0.10.7 keeps the Runner's ``load_from`` / ``resume`` arguments
    and its "loaded" flag only as private attributes, with no public
    accessor; they are read here, never written. ``training``: called from
    ``Runner.train()``, which builds its loop before ``before_run``.
    """
    return (runner._load_from, bool(runner._resume), runner._has_loaded,
            isinstance(runner._train_loop, BaseLoop))


def _wrappers(optim_wrapper) -> Dict[Optional[str], object]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return dict(optim_wrapper.items())
    return {None: optim_wrapper}


def _schedulers(runner, name: Optional[str]):
    """The built param schedulers of optimizer ``name`` (None: the only
    one)."""
    schedulers = runner.param_schedulers
    if isinstance(schedulers, dict):
        return schedulers.get(name) if name is not None else [
            s for group in schedulers.values() for s in group]
    return schedulers


def _has_lr_schedule(schedulers) -> bool:
    return any(getattr(s, 'param_name', None) == 'lr'
               for s in schedulers or [])


def _apply_config_lr(groups: list, targets: List[float], schedule: bool,
                     scheduler_states) -> List[tuple]:
    """Make the saved param ``groups`` (and the saved lr scheduler states)
    train at the config's base lr ``targets``; returns ``(old lr, new lr)``
    of the groups that changed.

    With an lr schedule the saved schedule goes on scaled by ``config /
    saved`` base lr; without one the lr is the config's.
    """
    changes, factors = [], []
    for group, target in zip(groups, targets):
        old = group['lr']
        if schedule:
            saved = group.get('initial_lr', old)
            factor = target / saved if saved else 1.0
            new = old if factor == 1 else old * factor
        else:
            factor, new = 1.0, target
        factors.append(factor)
        if new != old or group.get('initial_lr', target) != target:
            group['lr'] = new
            if 'initial_lr' in group or schedule:
                group['initial_lr'] = target
            changes.append((old, new))
    for state in (scheduler_states or []) if schedule else []:
        if state.get('param_name', 'lr') != 'lr':
            continue  # momentum / weight decay schedules keep theirs
        for key in ('base_values', '_last_value'):
            values = state.get(key)
            if isinstance(values, list):
                state[key] = [v * f for v, f in zip(values, factors)] + \
                    values[len(factors):]
    return changes


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f'{lo:g}' if lo == hi else f'{lo:g}..{hi:g}'


@HOOKS.register_module()
class CheckpointLoadHook(Hook):
    """Decide what a run loads, check that it fits, say so.

    In ``before_run`` (``Runner.train()``, ``val()`` and ``test()`` call it
    before the model is initialised and before the checkpoint loads):

    * **which checkpoint**: :func:`~sparseformer_mm.engine.checkpoint_load.
      checkpoint_to_load` (``resume`` without ``load_from`` reads
      ``work_dir/last_checkpoint``; an empty pointer or one naming a
      missing file, and a missing ``load_from`` / ``--resume PATH``, are
      errors saying what to type; no pointer: a warning that training
      starts from scratch). A pointer that names a file outside the work
      dir (a copied or moved work dir) while a file of that name is in it
      is rewritten to name that file, so that mmengine resumes from it;
    * **that it fits**: a checkpoint whose weights do not fit the model
      (another arch, ``replicates``, an image checkpoint for a video model,
      another ``num_classes``) raises :class:`CheckpointMismatchError`
      saying what to set, before mmengine's non-strict load would leave a
      mostly random model; ``allow_partial=True`` or a top-level
      ``partial_load = True`` in the config warns instead;
    * **pretrained weights**: when training loads a checkpoint, the
      backbone's ``pretrained`` file and ``init_cfg`` of type
      ``Pretrained`` are not read (the checkpoint holds the weights, so the
      file need not exist). When training starts from them instead, a
      ``Pretrained`` ``init_cfg`` whose file lacks a frozen parameter, or
      one the model lists in ``inherited_parameters()``, raises: mmengine
      loads it non-strictly and that parameter would stay random;
    * **the learning rate of a resume** (``config_lr=True``): mmengine
      restores the optimizer's saved lr, so ``--resume --cfg-options
      optim_wrapper.optimizer.lr=1e-5`` alone would train at the old rate.
      In ``after_load_checkpoint`` the saved param groups get the config's
      lr: with an lr schedule in the config, the saved schedule goes on
      scaled by ``config / saved`` base lr; without one (``param_scheduler=
      []``) the lr is the config's. One log line says so; an unchanged
      config changes nothing (a resume stays bit-exact).

    Args:
        allow_partial (bool): Warn instead of raising on a checkpoint that
            does not fit. Defaults to False.
        config_lr (bool): Let the config's learning rate win on resume.
            Defaults to True.
    """

    priority = 'VERY_HIGH'  # fail before the slower before_run checks

    def __init__(self, allow_partial: bool = False, config_lr: bool = True):
        self.allow_partial = allow_partial
        self.config_lr = config_lr
        self._resume_lrs = None

    def before_run(self, runner) -> None:
        load_from, resume, loaded, training = _load_arguments(runner)
        if loaded:
            return
        path = checkpoint_to_load(runner.work_dir, load_from, resume)
        if resume and load_from is None:
            self._follow_pointer(runner, path)
        model = unwrap_model(runner.model)
        if path is not None and osp.isfile(path):
            self._check_fit(runner, model, path)
        self._resume_lrs = None
        if not training:
            return
        if path is None:
            msg = pretrained_init_error(model)
            if msg:
                raise CheckpointMismatchError(msg)
            return
        cleared = clear_pretrained(model)
        if cleared:
            runner.logger.info(
                f'Training {"resumes from" if resume else "loads"} {path}, '
                'which holds the weights: skipped the pretrained '
                f"initialisation ({', '.join(cleared)}).")
        if resume and self.config_lr:
            self._resume_lrs = {
                name: ([g.get('initial_lr', g['lr'])
                        for g in w.optimizer.param_groups],
                       _has_lr_schedule(_schedulers(runner, name)))
                for name, w in _wrappers(runner.optim_wrapper).items()}

    @staticmethod
    def _follow_pointer(runner, path: Optional[str]) -> None:
        """Make mmengine's auto-resume (which reads the pointer) load
        ``path``; say when there is nothing to resume."""
        work_dir = runner.work_dir
        pointer = osp.join(work_dir, POINTER)
        target = read_pointer(work_dir)
        if path is None:
            runner.logger.warning(
                f'Resume requested, but {work_dir} has no {POINTER} file'
                f': training starts from scratch.')
        elif path != target:
            runner.logger.info(
                f'{pointer} names {target}, outside this work dir (was it '
                f'copied or moved?): resuming from {path}.')
            tmp = f'{pointer}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                f.write(path)
            os.replace(tmp, pointer)

    def _check_fit(self, runner, model, path: str) -> None:
        try:
            msg = checkpoint_fit_error(model, path)
        except ValueError as e:  # not a checkpoint at all
            raise CheckpointMismatchError(str(e)) from None
        if msg is None:
            return
        cfg = getattr(runner, 'cfg', None) or {}
        if self.allow_partial or cfg.get('partial_load', False):
            runner.logger.warning(f'{without_partial_hint(msg)} '
                                  'partial_load is set: loading only the '
                                  'weights that fit.')
            return
        raise CheckpointMismatchError(msg)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._resume_lrs is None or 'optimizer' not in checkpoint:
            return
        targets, self._resume_lrs = self._resume_lrs, None
        optim = checkpoint['optimizer']
        scheds = checkpoint.get('param_schedulers')
        changes, schedule = [], False
        for name, (lrs, has_schedule) in targets.items():
            state = optim if name is None else optim.get(name, {})
            saved = scheds if name is None or not isinstance(
                scheds, dict) else scheds.get(name)
            changes += _apply_config_lr(state.get('param_groups', []), lrs,
                                        has_schedule, saved)
            schedule |= has_schedule
        if changes:
            how = ("the saved schedule goes on scaled to the config's base "
                   'lr' if schedule else 'the config has no lr schedule')
            runner.logger.warning(
                f"Resuming at the config's learning rate, not the "
                f"checkpoint's: lr {_span([o for o, _ in changes])} -> "
                f'{_span([n for _, n in changes])} in {len(changes)} param '
                f'group(s) ({how}; CheckpointLoadHook(config_lr=False) keeps '
                "the checkpoint's).")

