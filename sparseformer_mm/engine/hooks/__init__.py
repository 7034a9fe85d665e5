from .batch_shape_hook import BatchPaddingHook
from .checkpoint_fit_hook import CheckpointFitHook
from .data_check_hook import BadDataError, DataCheckHook
from .non_finite_loss_hook import (NonFiniteLossError, NonFiniteLossHook,
                                   NonFiniteWeightsError)
from .resume_check_hook import ResumeCheckHook
from .rng_state_hook import RNGStateHook
from .roi_visualization_hook import RoIVisualizationHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .sampling_grad_scale_hook import SamplingGradScaleHook, current_loss_scale
from .skip_pretrained_hook import SkipPretrainedOnLoadHook, clear_pretrained
from .work_dir_lock_hook import (WorkDirLock, WorkDirLockedError,
                                 WorkDirLockHook)

__all__ = ['BadDataError', 'BatchPaddingHook', 'CheckpointFitHook',
           'DataCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'RNGStateHook', 'RoIVisualizationHook',
           'SamplingGradScaleHook', 'SkipPretrainedOnLoadHook',
           'clear_pretrained', 'current_loss_scale']
__all__ += ['NonFiniteWeightsError', 'ResumeCheckHook', 'SafeCheckpointHook',
            'WorkDirLock', 'WorkDirLockedError', 'WorkDirLockHook']
