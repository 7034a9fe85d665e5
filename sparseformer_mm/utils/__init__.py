from .ckpt_convert import (build_classifier, convert_sparseformer,
                           extract_state_dict, infer_arch, inflate_checkpoint,
                           save_checkpoint, to_mmpretrain)
from .model_utils import unwrap_model

__all__ = [
    'build_classifier', 'convert_sparseformer', 'extract_state_dict',
    'infer_arch', 'inflate_checkpoint', 'save_checkpoint', 'to_mmpretrain',
    'unwrap_model'
]
