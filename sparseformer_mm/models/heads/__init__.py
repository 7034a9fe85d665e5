from .sparseformer_head import SparseFormerHead

__all__ = ['SparseFormerHead']
