from .model_utils import unwrap_model

__all__ = ['unwrap_model']
