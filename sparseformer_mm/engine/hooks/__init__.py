from .batch_shape_hook import BatchPaddingHook
from .checkpoint_load_hook import CheckpointLoadHook, clear_pretrained
from .data_check_hook import BadDataError, DataCheckHook
from .rng_state_hook import RNGStateHook
from .roi_visualization_hook import RoIVisualizationHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .work_dir_lock_hook import (WorkDirLock, WorkDirLockedError,
                                 WorkDirLockHook)

__all__ = ['BadDataError', 'BatchPaddingHook', 'CheckpointLoadHook',
           'DataCheckHook', 'RNGStateHook', 'RoIVisualizationHook',
           'clear_pretrained']
__all__ += ['SafeCheckpointHook',
            'WorkDirLock', 'WorkDirLockedError', 'WorkDirLockHook']
