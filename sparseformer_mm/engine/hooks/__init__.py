from .data_check_hook import BadDataError, DataCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .rng_state_hook import RNGStateHook
from .roi_visualization_hook import RoIVisualizationHook
from .sampling_grad_scale_hook import SamplingGradScaleHook, current_loss_scale
from .skip_pretrained_hook import SkipPretrainedOnLoadHook, clear_pretrained

__all__ = ['BadDataError', 'DataCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'RNGStateHook', 'RoIVisualizationHook',
           'SamplingGradScaleHook', 'SkipPretrainedOnLoadHook',
           'clear_pretrained', 'current_loss_scale']
