"""Stops (or skips) a training step whose loss is NaN or infinite."""
import os.path as osp
import types
from typing import List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteWeightsError(NonFiniteLossError):
    """The model's weights became NaN or infinite (a step with a finite
    loss overflowed them); no checkpoint of them is written."""


def non_finite_tensors(state_dict) -> List[str]:
    """Names of the floating-point tensors in ``state_dict`` that hold a
    NaN or inf."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not torch.isfinite(v).all()]


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, if it exists.

    The pointer is written only after its checkpoint is whole on disk
    (``SafeCheckpointHook``), unlike the message hub's ``last_ckpt``, which
    mmengine sets before the save."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(pointer) as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if path and osp.isfile(path) else None


def _non_finite_ranks(loss: torch.Tensor) -> List[int]:
    """The ranks whose loss is non-finite (``[0]`` or ``[]`` without DDP).
    Under DDP every rank gets the same list, so all take the same branch;
    otherwise backward's gradient all-reduce would hang."""
    world = get_world_size()
    flags = torch.zeros(world, device=loss.device)
    flags[get_rank()] = (~torch.isfinite(loss.detach())).any().float()
    if world > 1:
        torch_dist.all_reduce(flags)
    return flags.nonzero().flatten().tolist()


def _describe(value, bad_ranks: List[int]) -> str:
    """``loss is nan``; under DDP naming the ranks (the log is rank 0's)."""
    if get_world_size() == 1:
        return f'loss is {value}'
    rank, ranks = get_rank(), ', '.join(map(str, bad_ranks))
    if rank in bad_ranks:
        return f'loss is {value} on rank {rank} (non-finite on rank(s) ' \
            f'{ranks})'
    return f'loss is non-finite on rank(s) {ranks} (rank {rank}: {value})'


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Check the loss *before* backward and the optimizer step.

    mmengine runs forward, backward and the optimizer step inside
    ``model.train_step`` through ``optim_wrapper.update_params(loss)``, so a
    hook that looks at the loss after the iteration is too late: the
    weights would already be NaN. This hook wraps ``update_params`` of the
    runner's optimizer wrapper(s) (any type: ``OptimWrapper``,
    ``AmpOptimWrapper``, ``OptimWrapperDict``) when training starts.

    With ``action='raise'`` a non-finite loss raises
    :class:`NonFiniteLossError` naming the iteration, before backward: the
    weights in memory are still those of the previous iteration, and as the
    error leaves ``runner.train()`` no later hook (``CheckpointHook``,
    ``EMAHook``) runs, so the newest checkpoint on disk is the last good
    one. With ``action='skip'`` the step is dropped (no backward, gradients
    zeroed, no optimizer step, so the weights do not change; with gradient
    accumulation the current window's gradients are dropped too) and a
    warning names the iteration; more than ``max_consecutive_skips`` skips
    in a row raise.

    Weights that are already non-finite (a step whose loss was finite can
    overflow them, e.g. with a far too high learning rate) are never
    checkpointed, in either mode: before every save
    (``before_save_checkpoint``) the weights (and EMA weights) are checked, and a non-finite tensor
    raises :class:`NonFiniteWeightsError` instead of writing the file, so
    the previous checkpoint stays the newest and, with
    ``SafeCheckpointHook``, is not rotated out. In skip mode a non-finite
    loss with non-finite weights raises at once (skipping cannot help).
    The errors name the last checkpoint on disk (``work_dir/last_checkpoint``).

    Args:
        action (str): ``'raise'`` or ``'skip'``. Defaults to 'raise'.
        max_consecutive_skips (int): With ``'skip'``, raise after this many
            consecutive skipped steps. Defaults to 10.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise', max_consecutive_skips: int = 10):
        if action not in ('raise', 'skip'):
            raise ValueError(f"action must be 'raise' or 'skip', got "
                             f'{action!r}')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped = []  # 1-based iterations whose step was skipped
        self._consecutive = 0
        self._runner = None
        self._batch_idx: Optional[int] = None

    def before_train(self, runner) -> None:
        self._runner = runner
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) \
            else [wrapper]
        for w in wrappers:
            if getattr(w, '_non_finite_guard', None) is not self:
                self._install(w)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._batch_idx = batch_idx

    def _where(self) -> str:
        r = self._runner
        where = f'iteration {r.iter + 1}'
        if self._batch_idx is not None and isinstance(r.train_loop,
                                                      EpochBasedTrainLoop):
            where += f' (epoch {r.epoch + 1}, batch {self._batch_idx + 1})'
        return where

    def _install(self, wrapper) -> None:
        original = wrapper.update_params
        hook = self

        def update_params(self_w, loss, step_kwargs=None, zero_kwargs=None):
            bad_ranks = _non_finite_ranks(loss)
            if not bad_ranks:
                hook._consecutive = 0
                return original(loss, step_kwargs=step_kwargs,
                                zero_kwargs=zero_kwargs)
            hook._on_non_finite(self_w, loss, bad_ranks, zero_kwargs)

        wrapper.update_params = types.MethodType(update_params, wrapper)
        wrapper._non_finite_guard = self

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = []
        for key in ('state_dict', 'ema_state_dict'):
            bad += non_finite_tensors(checkpoint.get(key) or {})
        if not bad:
            return
        meta = checkpoint.get('meta') or {}
        raise NonFiniteWeightsError(
            f'{len(bad)} weight tensor(s) are non-finite (e.g. {bad[0]}) at '
            f"epoch {meta.get('epoch')}, iteration {meta.get('iter')}: a "
            'step overflowed them, so this checkpoint was not written.'
            f'{self._last_ckpt_and_advice(runner)}')

    def _last_ckpt_and_advice(self, runner) -> str:
        last = last_checkpoint(runner.work_dir)
        if last:
            where = f' The last checkpoint is {last}; resume from it'
            resume = '--resume'
        else:
            where = (' There is no checkpoint in this work dir yet; start '
                     'again')
            resume = None
        has_lr_override = any(type(h).__name__ == 'ResumeCheckHook'
                              for h in runner.hooks)
        if resume and not has_lr_override:
            lr = ("a lower learning rate (add dict(type='ResumeCheckHook') "
                  'to custom_hooks so that a resumed run takes the lr of '
                  '--cfg-options optim_wrapper.optimizer.lr=... instead of '
                  "the checkpoint's)")
        elif resume:
            lr = ('a lower learning rate (--resume --cfg-options '
                  'optim_wrapper.optimizer.lr=...: the resumed schedule is '
                  'rescaled to it)')
        else:
            lr = 'a lower learning rate (optim_wrapper.optimizer.lr)'
        return (f'{where} with {lr}, gradient clipping '
                '(optim_wrapper.clip_grad) or bf16 instead of fp16.')

    def _on_non_finite(self, wrapper, loss, bad_ranks, zero_kwargs) -> None:
        value = loss.detach().float()
        what = _describe(value.item() if value.numel() == 1 else
                         value.tolist(), bad_ranks)
        r = self._runner
        if self.action == 'skip':
            bad = non_finite_tensors(r.model.state_dict())
            if bad:
                # an earlier step (finite loss) overflowed the weights:
                # skipping steps cannot bring them back
                raise NonFiniteWeightsError(
                    f'{what} at {self._where()} and {len(bad)} weight '
                    f'tensor(s) are already non-finite (e.g. {bad[0]}): an '
                    'earlier step overflowed them, so skipping cannot help. '
                    'Training stopped; no checkpoint of non-finite weights '
                    f'is written.{self._last_ckpt_and_advice(r)}')
            self._consecutive += 1
            self.skipped.append(r.iter + 1)
            if self._consecutive <= self.max_consecutive_skips:
                # what backward would have counted (gradient accumulation)
                wrapper._inner_count += 1
                wrapper.zero_grad(**(zero_kwargs or {}))
                r.logger.warning(
                    f'{what} at {self._where()}: step skipped (weights '
                    f'unchanged), {len(self.skipped)} skipped so far')
                return
        advice = ("; or skip such steps with dict(type='NonFiniteLossHook', "
                  "action='skip') in custom_hooks") if self.action == 'raise' \
            else ''
        run_of = (f' after {self._consecutive} consecutive skipped steps'
                  if self.action == 'skip' else '')
        raise NonFiniteLossError(
            f'{what} at {self._where()}{run_of}. Training stopped '
            'before backward, so the weights were not updated with it and no '
            f'checkpoint of this state was written.'
            f'{self._last_ckpt_and_advice(r)} Look for broken inputs at this '
            f'iteration{advice}.')


__all__ = ['NonFiniteLossHook', 'NonFiniteLossError', 'NonFiniteWeightsError',
           'last_checkpoint', 'non_finite_tensors']
