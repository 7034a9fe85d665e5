"""Stops (or skips) a training step whose loss is NaN or infinite."""
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

    def _on_non_finite(self, wrapper, loss, bad_ranks, zero_kwargs) -> None:
        value = loss.detach().float()
        what = _describe(value.item() if value.numel() == 1 else
                         value.tolist(), bad_ranks)
        r = self._runner
        if self.action == 'skip':
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
        last = r.message_hub.get_info('last_ckpt')
        ckpt = f' The last checkpoint is {last}.' if last else \
            ' No checkpoint was saved in this run yet.'
        advice = ("; or skip such steps with dict(type='NonFiniteLossHook', "
                  "action='skip') in custom_hooks") if self.action == 'raise' \
            else ''
        run_of = (f' after {self._consecutive} consecutive skipped steps'
                  if self.action == 'skip' else '')
        raise NonFiniteLossError(
            f'{what} at {self._where()}{run_of}. Training stopped '
            'before backward, so the weights were not updated with it and no '
            f'checkpoint of this state was written.{ckpt} Resume from it with '
            'a lower learning rate (optim_wrapper.optimizer.lr), gradient '
            'clipping (optim_wrapper.clip_grad) or bf16 instead of fp16; look '
            f'for broken inputs at this iteration{advice}.')


__all__ = ['NonFiniteLossHook', 'NonFiniteLossError']
