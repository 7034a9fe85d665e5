import torch
import torch.nn.functional as F

from sparseformer_mm.models.layers import AdaptiveMixing


def test_matches_per_token_computation():
    d, C, P = 16, 6, 4
    mix = AdaptiveMixing(d, C, P)
    with torch.no_grad():
        for p in mix.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 3, P, C)
    tokens = torch.randn(2, 3, d)
    out = mix(x, tokens)
    gen = mix.parameter_generator
    for b in range(2):
        for n in range(3):
            h = F.layer_norm(tokens[b, n], (d, ), gen[0].weight, gen[0].bias,
                             1e-5)
            params = gen[2](gen[1](h))
            m_c = params[:C * C].view(C, C)  # (C_in, C_out), row-major
            m_s = params[C * C:].view(P, P)  # (P_out, P_in)
            y = F.gelu(x[b, n] @ m_c + mix.m_beta)
            y = F.gelu(m_s @ y + mix.s_beta[:, None])
            exp = mix.out_proj(y.reshape(-1))  # point-major flatten
            torch.testing.assert_close(out[b, n], exp, atol=1e-5, rtol=1e-5)


def test_reference_init():
    mix = AdaptiveMixing(32, 96, 36)
    mix.reset_special()
    gen = mix.parameter_generator
    assert (gen[2].weight == 0).all()
    torch.testing.assert_close(gen[0].weight, torch.full((32, ), 32 ** -0.5))
    assert gen[2].bias.shape == (96 * 96 + 36 * 36, )
    assert gen[2].bias[96 * 96:].abs().max() <= (6 / 72) ** 0.5
