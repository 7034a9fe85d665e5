"""The optimizer wrapper that owns a training step's policy: AMP where it
can run, the loss scale handed to the model, non-finite losses."""
import contextlib
import logging
from typing import List, Optional, Union

import torch
import torch.distributed as torch_dist
from mmengine.device import (get_device, is_cuda_available,
                             is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

# Message hub runtime info: how many steps in a row were skipped for a
# non-finite loss (0 after a step that ran). A checkpoint records it, and
# SafeCheckpointHook does not save weights that produced such a run.
SKIPPED_STEPS_KEY = 'non_finite_skips_in_a_row'


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteWeightsError(NonFiniteLossError):
    """The model's weights became NaN or infinite (a step with a finite
    loss overflowed them); no checkpoint of them is written."""


def amp_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can be built here.

    The same test as ``AmpOptimWrapper.__init__`` asserts (CUDA, NPU, MLU or
    MUSA), so the two never disagree. ``CUDA_VISIBLE_DEVICES=''`` hides the
    GPUs from it as from the Runner.
    """
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def non_finite_tensors(state_dict) -> List[str]:
    """Names of the floating-point tensors in ``state_dict`` that hold a
    NaN or inf."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not torch.isfinite(v).all()]


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


def _describe(loss: torch.Tensor, bad_ranks: List[int]) -> str:
    """``loss is nan``; under DDP naming the ranks (the log is rank 0's)."""
    value = loss.detach().float()
    value = value.item() if value.numel() == 1 else value.tolist()
    if get_world_size() == 1:
        return f'loss is {value}'
    rank, ranks = get_rank(), ', '.join(map(str, bad_ranks))
    if rank in bad_ranks:
        return (f'loss is {value} on rank {rank} (non-finite on rank(s) '
                f'{ranks})')
    return f'loss is non-finite on rank(s) {ranks} (rank {rank}: {value})'


def _amp_device(amp: Union[bool, str]) -> Optional[str]:
    """The device AMP autocasts on for ``amp`` (see the wrapper), or None
    for fp32."""
    if amp == 'cpu':
        return 'cpu'
    if amp is True and not amp_available():
        raise RuntimeError(
            'AmpOrFp32OptimWrapper(amp=True) needs a GPU (or NPU/MLU/MUSA) '
            "and none is available: set amp='auto' to train in fp32 here, "
            "amp=False, or amp='cpu' for mixed precision on the CPU.")
    if amp is True or (amp == 'auto' and amp_available()):
        return get_device()  # where the Runner puts the model
    return None


def grad_scaler(loss_scale: Union[str, float, dict], device: str,
                use_fsdp: bool = False):
    """``(scaler, fixed scale or None)`` for ``AmpOptimWrapper``'s
    ``loss_scale`` forms (``'dynamic'``, a number, ``GradScaler``
    arguments), with the scaler of ``device``: on 'cuda' the one mmengine
    builds (``torch.cuda.amp.GradScaler`` is ``torch.amp.GradScaler
    ('cuda')``), on 'cpu' ``torch.amp.GradScaler('cpu')``."""
    if use_fsdp:
        from torch.distributed.fsdp.sharded_grad_scaler import \
            ShardedGradScaler

        def scaler_type(**kw):
            return ShardedGradScaler(device=device, **kw)
    else:
        def scaler_type(**kw):
            return torch.amp.GradScaler(device, **kw)
    if loss_scale == 'dynamic':
        return scaler_type(), None
    if isinstance(loss_scale, (int, float)) and \
            not isinstance(loss_scale, bool):
        return scaler_type(init_scale=float(loss_scale)), float(loss_scale)
    if isinstance(loss_scale, dict):
        return scaler_type(**loss_scale), None
    raise TypeError("optim_wrapper.loss_scale must be 'dynamic', a number "
                    f'or a dict of GradScaler arguments, got {loss_scale!r}')


def _cast_dtype(dtype: Optional[Union[str, torch.dtype]]) -> torch.dtype:
    """The autocast dtype: float16 (None), bfloat16, ...; a clear error
    for another name."""
    if dtype is None:
        return torch.float16
    if isinstance(dtype, str):
        if dtype not in AmpOptimWrapper.valid_dtypes:
            raise ValueError(f'optim_wrapper.dtype must be one of '
                             f'{AmpOptimWrapper.valid_dtypes}, got {dtype!r}')
        return getattr(torch, dtype)
    if isinstance(dtype, torch.dtype):
        return dtype
    raise TypeError(f'optim_wrapper.dtype must be a dtype name, got '
                    f'{dtype!r}')


def _check_device(model: torch.nn.Module, device: str) -> None:
    """Autocast on ``device`` would leave a model elsewhere in fp32."""
    param = next(model.parameters(), None)
    if param is not None and param.device.type != device:
        raise RuntimeError(
            f'AmpOrFp32OptimWrapper autocasts on {device!r} but the model is '
            f"on {param.device}: amp='cpu' is mixed precision for a model on "
            "the CPU; use amp=True (or 'auto') on a GPU.")


@OPTIM_WRAPPERS.register_module()
class AmpOrFp32OptimWrapper(AmpOptimWrapper):
    """One training step's whole policy: precision, loss scale, NaN.

    * **AMP where it can run, fp32 elsewhere.** With ``amp='auto'`` this is
      mmengine's ``AmpOptimWrapper`` with an accelerator and a plain fp32
      ``OptimWrapper`` step (same optimizer, clipping and accumulation, one
      log line) without one, so every entry point (our ``tools/train.py``,
      mmaction2's and mmpretrain's, ``Runner.from_cfg(cfg).train()``) trains
      on a laptop or CI too; mmengine's own class refuses to be built there.
      ``amp=True`` requires AMP (an error without an accelerator),
      ``amp=False`` is fp32 everywhere, and ``amp='cpu'`` is the same
      mixed-precision step on the CPU (``torch.autocast('cpu')``,
      ``torch.amp.GradScaler('cpu')``; fp16 or bf16), so that a machine
      without a GPU runs what a GPU run executes. The AMP step is one code
      path with the device as a parameter: autocast on :attr:`device` and
      its ``GradScaler``, as mmengine's ``AmpOptimWrapper`` does on 'cuda'.
      :attr:`amp` says whether AMP runs, :attr:`device` where.
    * **The loss scale reaches the model.** Entering :meth:`optim_context`
      (``train_step`` does, before forward) calls ``set_loss_scale(scale)``
      on every module of the model that has it (the SparseFormer
      backbones), with the scale the coming backward multiplies the loss by
      (1 in fp32), so their sampling-coordinate gradient clip scales with
      it. mmengine's AMP scales the loss for bf16 too; bf16 configs set
      ``loss_scale=1.0``.
    * **A non-finite loss never reaches the weights.** :meth:`update_params`
      checks the loss before backward, on every rank at once (an
      all-reduce: all ranks take the same branch, or DDP's gradient
      all-reduce would hang). ``non_finite_loss='raise'`` raises
      :class:`NonFiniteLossError` naming the iteration, the ranks and the
      last checkpoint; the weights in memory are the previous step's.
      ``'skip'`` drops the step (no backward, gradients of the current
      accumulation window zeroed, no optimizer step) with a warning, and
      raises after more than ``max_consecutive_skips`` in a row, or at
      once when the weights themselves are already non-finite. The run of
      skipped steps is published in the message hub
      (:data:`SKIPPED_STEPS_KEY`); ``SafeCheckpointHook`` does not save a
      checkpoint at the end of such a run. (A finite loss whose scaled
      gradients overflow is the scaler's business, as in mmengine: the
      optimizer step is skipped and the dynamic scale backs off.)

    Args:
        loss_scale (str | float | dict): ``AmpOptimWrapper``'s loss scale:
            ``'dynamic'``, a fixed number or ``GradScaler`` arguments.
            Defaults to 'dynamic'.
        dtype (str | torch.dtype, optional): The autocast dtype,
            ``'float16'`` or ``'bfloat16'``; None is float16.
            Defaults to None.
        use_fsdp (bool): As in ``AmpOptimWrapper``. Defaults to False.
        amp (bool | str): ``'auto'``, True, False or ``'cpu'`` (above).
            Defaults to 'auto'.
        non_finite_loss (str): ``'raise'`` or ``'skip'``.
            Defaults to 'raise'.
        max_consecutive_skips (int): With ``'skip'``, raise after this many
            consecutive skipped steps. Defaults to 10.
        **kwargs: ``OptimWrapper``'s arguments (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 use_fsdp: bool = False,
                 amp: Union[bool, str] = 'auto',
                 non_finite_loss: str = 'raise',
                 max_consecutive_skips: int = 10,
                 **kwargs):
        if amp not in ('auto', True, False, 'cpu'):
            raise ValueError(f"optim_wrapper.amp must be 'auto', True, False "
                             f"or 'cpu', got {amp!r}")
        if non_finite_loss not in ('raise', 'skip'):
            raise ValueError(f"non_finite_loss must be 'raise' or 'skip', "
                             f'got {non_finite_loss!r}')
        self.device = _amp_device(amp)
        self.amp = self.device is not None
        # AmpOptimWrapper.__init__ asserts an accelerator: its body (the
        # scaler and the dtype) with the device as a parameter instead
        OptimWrapper.__init__(self, **kwargs)
        self.loss_scaler, self._scale_update_param = None, None
        self.cast_dtype = None
        if self.amp:
            self.loss_scaler, self._scale_update_param = grad_scaler(
                loss_scale, self.device, use_fsdp)
            self.cast_dtype = _cast_dtype(dtype)
        elif amp == 'auto':
            # Built once per Runner.train(): one line per run.
            print_log(
                'No GPU (or NPU/MLU/MUSA) found: AmpOrFp32OptimWrapper '
                "trains in fp32 instead of AMP (amp='cpu': mixed precision "
                'on the CPU).', logger='current')
        self.non_finite_loss = non_finite_loss
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped: List[int] = []  # 1-based iterations skipped
        self._in_a_row = 0

    # -- precision ---------------------------------------------------------
    @property
    def loss_scale(self) -> float:
        """The factor the next backward multiplies the loss by (1 in
        fp32)."""
        if self.loss_scaler is not None and self.loss_scaler.is_enabled():
            return float(self.loss_scaler.get_scale())
        return 1.0

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        if self.amp:
            super().backward(loss, **kwargs)
        else:
            OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs) -> None:
        if self.amp:
            super().step(**kwargs)
        else:
            OptimWrapper.step(self, **kwargs)

    def state_dict(self) -> dict:
        return super().state_dict() if self.amp else \
            OptimWrapper.state_dict(self)

    def load_state_dict(self, state_dict: dict) -> None:
        if not self.amp:
            # a checkpoint of an AMP run resumed in fp32
            state_dict = {k: v for k, v in state_dict.items()
                          if k != 'loss_scaler'}
        super().load_state_dict(state_dict)

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module):
        scale = self.loss_scale
        for module in model.modules():
            set_loss_scale = getattr(module, 'set_loss_scale', None)
            if callable(set_loss_scale):
                set_loss_scale(scale)
        # OptimWrapper's context (no gradient sync inside an accumulation
        # window), and autocast on the AMP device as AmpOptimWrapper's
        with OptimWrapper.optim_context(self, model):
            if not self.amp:
                yield
                return
            _check_device(model, self.device)
            with torch.autocast(self.device, dtype=self.cast_dtype):
                yield

    # -- non-finite losses -------------------------------------------------
    def update_params(self, loss: torch.Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        bad_ranks = _non_finite_ranks(loss)
        if not bad_ranks:
            self._set_in_a_row(0)
            super().update_params(loss, step_kwargs=step_kwargs,
                                  zero_kwargs=zero_kwargs)
            return
        hub = MessageHub.get_current_instance()
        what = _describe(loss, bad_ranks)
        where = self._where(hub)
        if self.non_finite_loss == 'raise':
            raise NonFiniteLossError(
                f'{what} at {where}. Training stopped before backward, so '
                'the weights were not updated with it and no checkpoint of '
                f'this state was written.{_advice(hub)} Look for broken '
                'inputs at this iteration; or skip such steps with '
                "optim_wrapper.non_finite_loss='skip'.")
        bad = non_finite_tensors({
            str(i): p for i, p in enumerate(
                p for g in self.optimizer.param_groups for p in g['params'])})
        if bad:
            # an earlier step (finite loss) overflowed the weights:
            # skipping steps cannot bring them back
            raise NonFiniteWeightsError(
                f'{what} at {where} and {len(bad)} weight tensor(s) are '
                'already non-finite: an earlier step overflowed them, so '
                'skipping cannot help. Training stopped; no checkpoint of '
                f'non-finite weights is written.{_advice(hub)}')
        self._set_in_a_row(self._in_a_row + 1)
        if self._in_a_row > self.max_consecutive_skips:
            raise NonFiniteLossError(
                f'{what} at {where} after {self._in_a_row - 1} consecutive '
                'skipped steps. Training stopped; the weights may be ruined '
                '(a step can blow them up to finite values that make every '
                'later loss non-finite), and no checkpoint was written '
                f'since the skips began.{_advice(hub)}')
        self.skipped.append(int(hub.get_info('iter', 0)) + 1)
        self._inner_count += 1  # what backward would have counted
        self.zero_grad(**(zero_kwargs or {}))
        print_log(f'{what} at {where}: step skipped (weights unchanged), '
                  f'{len(self.skipped)} skipped so far', logger='current',
                  level=logging.WARNING)

    def _set_in_a_row(self, n: int) -> None:
        self._in_a_row = n
        MessageHub.get_current_instance().update_info(SKIPPED_STEPS_KEY, n)

    @staticmethod
    def _where(hub: MessageHub) -> str:
        # RuntimeInfoHook (a default hook) records the 0-based iteration
        return f"iteration {int(hub.get_info('iter', 0)) + 1}"


def recovery_advice(last_ckpt: Optional[str]) -> str:
    """What to do after a non-finite loss or weights: the checkpoint to go
    back to (``last_ckpt``, the newest one this run wrote or resumed from)
    and what to change."""
    if last_ckpt:
        where = (f' The last checkpoint is {last_ckpt}; resume from it '
                 '(--resume --cfg-options optim_wrapper.optimizer.lr=...) '
                 'with a lower learning rate')
    else:
        where = (' There is no checkpoint of this run yet; start again with '
                 'a lower learning rate (optim_wrapper.optimizer.lr)')
    return (f'{where}, gradient clipping (optim_wrapper.clip_grad) or bf16 '
            'instead of fp16.')


def _advice(hub: MessageHub) -> str:
    # mmengine's CheckpointHook records each checkpoint it saves (or a
    # resume restores) as 'last_ckpt'; SafeCheckpointHook records only
    # checkpoints it wrote, so this is the last good one.
    return recovery_advice(hub.get_info('last_ckpt'))


__all__ = ['AmpOrFp32OptimWrapper', 'NonFiniteLossError',
           'NonFiniteWeightsError', 'SKIPPED_STEPS_KEY', 'amp_available',
           'grad_scaler', 'non_finite_tensors', 'recovery_advice']
