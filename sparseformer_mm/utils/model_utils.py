"""Small helpers on built models."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a wrapper (DDP, FSDP, ...), or ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
