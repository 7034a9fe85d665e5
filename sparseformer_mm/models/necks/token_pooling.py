"""Token pooling neck: mean over tokens (or the class token), then LayerNorm."""
from typing import Tuple, Union

import torch.nn as nn
from mmaction.registry import MODELS as ACTION_MODELS
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from torch import Tensor


@PRETRAIN_MODELS.register_module()
class TokenPooling(BaseModule):
    """Average the tokens (or take the class token) and normalise:
    ``(B, N, C) -> (B, C)``.

    Holds the reference model's final ``norm``, so that this neck followed by
    a linear head (``LinearClsHead`` in mmpretrain) carries exactly the
    reference classifier's parameters.

    Args:
        in_channels (int): token width.
        eps (float): LayerNorm eps. Defaults to 1e-6.
        pool (str): ``'mean'`` over all tokens, or ``'cls'``: token 0, for
            an arch that inserts a class token. Defaults to 'mean'.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels: int, eps: float = 1e-6,
                 pool: str = 'mean', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if pool not in ('mean', 'cls'):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.pool = pool
        self.norm = nn.LayerNorm(in_channels, eps=eps)

    def forward(self, inputs: Union[Tensor, Tuple[Tensor]]) -> Tuple[Tensor]:
        tokens = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        width = self.norm.normalized_shape[0]
        if tokens.shape[-1] != width:
            raise ValueError(
                f'TokenPooling(in_channels={width}) got {tokens.shape[-1]}-'
                'dim tokens; set the neck\'s in_channels and the head\'s '
                f'in_channels to {tokens.shape[-1]} (the backbone arch\'s '
                'cortex_dims).')
        pooled = tokens[:, 0] if self.pool == 'cls' else tokens.mean(dim=1)
        return (self.norm(pooled), )


@ACTION_MODELS.register_module(name='TokenPooling')
class ActionTokenPooling(TokenPooling):
    """:class:`TokenPooling` with mmaction2's neck interface.

    mmaction2 recognizers call ``neck(x, data_samples=...)`` and expect
    ``(features, loss_aux)``; the features are ``(B, C)`` for the head.
    Registered in mmaction2 as ``TokenPooling``.
    """

    def forward(self, inputs, data_samples=None) -> Tuple[Tensor, dict]:
        return super().forward(inputs)[0], dict()
