"""Adaptive mixing: decode sampled point features into a token (AdaMixer)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class AdaptiveMixing(nn.Module):
    """Token-conditioned channel then point mixing of sampled features.

    A generator ``LN -> Linear(d, inner) -> Linear(inner, C*C + P_out*P)``
    gives per-token matrices ``M_c (C_in, C_out)`` and ``M_s (P_out, P)``;
    the sampled ``x (P, C)`` becomes ``GELU(M_s @ GELU(x @ M_c + b_c) + b_s)``
    with biases, or ``GELU(M_s @ (x @ M_c))`` without them (the reference
    library's bias-free form has no activation between the two mixings),
    flattened point-major and projected to the token width.

    Args:
        embed_dims (int): token width ``d``.
        in_channels (int): sampled feature channels ``C``. Defaults to 96.
        num_points (int): points per token ``P``. Defaults to 36.
        inner_dims (int, optional): generator bottleneck width. Defaults to
            ``d // 4``.
        out_points (int, optional): mixed points ``P_out``. Defaults to P.
        bias (bool): learned mixing biases ``b_c``, ``b_s``.
            Defaults to True.
        generator_eps (float): eps of the generator's LayerNorm. The
            reference library builds it with PyTorch's default 1e-5 (every
            other LayerNorm uses 1e-6); the original training code used
            1e-6. The difference moves logits by ~3e-7. Defaults to 1e-5.
    """

    def __init__(self, embed_dims: int, in_channels: int = 96,
                 num_points: int = 36, inner_dims: Optional[int] = None,
                 out_points: Optional[int] = None, bias: bool = True,
                 generator_eps: float = 1e-5):
        super().__init__()
        self.embed_dims = embed_dims
        self.in_channels = in_channels
        self.num_points = num_points
        self.out_points = out_points or num_points
        inner = inner_dims or int(embed_dims * 0.25)
        self.parameter_generator = nn.Sequential(
            nn.LayerNorm(embed_dims, eps=generator_eps),
            nn.Linear(embed_dims, inner),
            nn.Linear(inner, in_channels * in_channels
                      + self.out_points * num_points),
        )
        if bias:
            self.m_beta = nn.Parameter(torch.zeros(in_channels))
            self.s_beta = nn.Parameter(torch.zeros(self.out_points))
        else:
            self.m_beta = self.s_beta = None
        self.out_proj = nn.Linear(in_channels * self.out_points, embed_dims)

    @torch.no_grad()
    def reset_special(self) -> None:
        """Reference init on top of the generic Linear/LayerNorm init."""
        C, P, Q = self.in_channels, self.num_points, self.out_points
        norm, last = self.parameter_generator[0], self.parameter_generator[2]
        norm.weight.fill_(self.embed_dims ** -0.5)
        norm.bias.zero_()
        last.weight.zero_()
        nn.init.xavier_uniform_(last.bias[:C * C].view(C, C))
        nn.init.xavier_uniform_(last.bias[C * C:].view(P, Q))

    def forward(self, sampled: Tensor, tokens: Tensor) -> Tensor:
        """Args: sampled ``(B, N, P, C)``, tokens ``(B, N, d)``. Returns ``(B, N, d)``."""
        B, N, P, C = sampled.shape
        Q = self.out_points
        norm, bottleneck, last = self.parameter_generator
        h = bottleneck(norm(tokens)).reshape(B * N, -1)
        # The last generator layer as two row blocks of its weight: each
        # output is then contiguous, where splitting one output would copy
        # both halves (the largest copy in a CPU profile).
        m_c = F.linear(h, last.weight[:C * C], last.bias[:C * C])
        m_s = F.linear(h, last.weight[C * C:], last.bias[C * C:])
        m_c = m_c.view(B * N, C, C)
        m_s = m_s.view(B * N, Q, P)
        x = sampled.reshape(B * N, P, C)
        if x.dtype != m_c.dtype:  # sampling runs in fp32, the generator may not
            x = x.to(m_c.dtype)
        if self.m_beta is None:
            x = F.gelu(torch.bmm(m_s, torch.bmm(x, m_c)))
        else:
            dtype = m_c.dtype
            x = F.gelu(torch.baddbmm(self.m_beta.to(dtype).view(1, 1, C),
                                     x, m_c))
            x = F.gelu(torch.baddbmm(self.s_beta.to(dtype).view(1, Q, 1),
                                     m_s, x))
        return self.out_proj(x.reshape(B, N, Q * C))
