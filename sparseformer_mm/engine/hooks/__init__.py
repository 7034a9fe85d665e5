from .sampling_grad_scale_hook import SamplingGradScaleHook, current_loss_scale

__all__ = ['SamplingGradScaleHook', 'current_loss_scale']
