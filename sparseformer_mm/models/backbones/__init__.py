from .sparseformer import EarlyConvolution, SparseFormer

__all__ = ['EarlyConvolution', 'SparseFormer']
