from .ckpt_convert import (build_classifier, convert_sparseformer,
                           extract_state_dict, infer_arch, inflate_checkpoint,
                           save_checkpoint, to_mmpretrain)

__all__ = [
    'build_classifier', 'convert_sparseformer', 'extract_state_dict',
    'infer_arch', 'inflate_checkpoint', 'save_checkpoint', 'to_mmpretrain'
]
