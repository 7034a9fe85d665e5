from .sparseformer_head import SparseFormerHead
from .zero_shot_head import ZeroShotClsHead

__all__ = ['SparseFormerHead', 'ZeroShotClsHead']
