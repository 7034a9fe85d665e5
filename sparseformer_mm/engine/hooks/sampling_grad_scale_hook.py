"""Keeps SparseFormer's sampling-coordinate gradient clip right under AMP."""
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import HOOKS

from ...utils.model_utils import unwrap_model


def current_loss_scale(optim_wrapper) -> float:
    """The factor the next backward pass multiplies the loss by.

    It is the GradScaler's scale of an ``AmpOptimWrapper`` and 1 otherwise:
    a plain ``OptimWrapper``, including the fp32 one that
    ``AmpOrFp32OptimWrapper`` builds on a machine without a GPU.
    mmengine's ``AmpOptimWrapper`` scales the loss even for bf16; bf16 needs
    no scaling, so bf16 configs set ``loss_scale=1.0`` and the clip sees 1.
    """
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    if wrappers:  # OptimWrapperDict: the model's one wrapper holds the scaler
        optim_wrapper = next(iter(wrappers.values()))
    if isinstance(optim_wrapper, AmpOptimWrapper):
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        if scaler is not None and scaler.is_enabled():
            return float(scaler.get_scale())
    return 1.0


@HOOKS.register_module()
class SamplingGradScaleHook(Hook):
    """Before each training iteration, hand the AMP loss scale to every
    module with a ``set_loss_scale(scale)`` method (SparseFormer and
    VideoSparseFormer backbones), so that their sampling-coordinate gradient
    clip scales with it (1.0 in fp32)."""

    priority = 'NORMAL'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        scale = current_loss_scale(runner.optim_wrapper)
        for m in unwrap_model(runner.model).modules():
            set_loss_scale = getattr(m, 'set_loss_scale', None)
            if callable(set_loss_scale):
                set_loss_scale(scale)
