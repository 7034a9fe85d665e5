from .data_check_hook import BadDataError, DataCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .rng_state_hook import RNGStateHook
from .roi_visualization_hook import RoIVisualizationHook
from .sampling_grad_scale_hook import SamplingGradScaleHook, current_loss_scale

__all__ = ['BadDataError', 'DataCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'RNGStateHook', 'RoIVisualizationHook',
           'SamplingGradScaleHook', 'current_loss_scale']
