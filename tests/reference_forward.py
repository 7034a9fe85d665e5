"""An independent, functional SparseFormer v1 forward for tests.

Written straight from the published description, on the *released* flat
state-dict layout, with hand-written bilinear sampling (no grid_sample),
explicit softmax attention and explicit per-token mixing, so it shares no
code with ``sparseformer_mm``.
"""
import math

import torch
import torch.nn.functional as F


def _ln(x, sd, prefix, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + '.weight'],
                        sd[prefix + '.bias'], eps)


def _lin(x, sd, prefix):
    y = x @ sd[prefix + '.weight'].t()
    if prefix + '.bias' in sd:
        y = y + sd[prefix + '.bias']
    return y


def bilinear(feat, px, py):
    """feat (C, H, W); px, py (...) in pixel units of align_corners=False,
    zero padding. Returns (..., C)."""
    C, H, W = feat.shape
    x, y = px * W - 0.5, py * H - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    out = 0
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            valid = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            idx = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long()
            v = feat.reshape(C, -1)[:, idx.reshape(-1)].t().reshape(
                *idx.shape, C)
            out = out + v * (w * valid).unsqueeze(-1)
    return out


def unit(sd, p, x, roi, feat, ops):
    B, N, D = x.shape
    for op in ops:
        if op == 'attn':
            h = _ln(x, sd, p + 'norm1')
            qkv = _lin(h, sd, p + 'attn.qkv').reshape(B, N, 3, 64, D // 64)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            a = torch.einsum('bnhd,bmhd->bhnm', q, k) / math.sqrt(D // 64)
            o = torch.einsum('bhnm,bmhd->bnhd', a.softmax(-1), v)
            x = x + _lin(o.reshape(B, N, D), sd, p + 'attn.proj')
        elif op == 'mlp':
            h = _ln(x, sd, p + 'norm2')
            x = x + _lin(F.gelu(_lin(h, sd, p + 'mlp.fc1')), sd, p + 'mlp.fc2')
        elif op == 'roi':
            d = _ln(x, sd, p + 'roi_adjust_module.0') @ \
                sd[p + 'roi_adjust_module.1.weight'].t()
            cx, cy = (roi[..., 0] + roi[..., 2]) / 2, (roi[..., 1] + roi[..., 3]) / 2
            w, h = (roi[..., 2] - roi[..., 0]).abs(), (roi[..., 3] - roi[..., 1]).abs()
            cx, cy = cx + d[..., 0] * w, cy + d[..., 1] * h
            w, h = w * d[..., 2].exp(), h * d[..., 3].exp()
            roi = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        else:  # sampling + adaptive mixing
            o = _ln(x, sd, p + 'roi_offset_module.0') @ \
                sd[p + 'roi_offset_module.1.weight'].t() + sd[p + 'roi_offset_bias']
            o = o.reshape(B, N, -1, 2)
            o = (o - o.mean(2, keepdim=True)) / (3 * (o.std(2, keepdim=True) + 1e-5))
            ctr = (roi[..., :2] + roi[..., 2:]) / 2
            size = roi[..., 2:] - roi[..., :2]
            pts = ctr.unsqueeze(2) + o * size.unsqueeze(2)
            g = _ln(x, sd, p + 'adaptive_mixing.parameter_generator.0', 1e-5)
            g = _lin(_lin(g, sd, p + 'adaptive_mixing.parameter_generator.1'),
                     sd, p + 'adaptive_mixing.parameter_generator.2')
            C = feat.shape[1]
            P = pts.shape[2]
            out = []
            for b in range(B):
                s = bilinear(feat[b], pts[b, ..., 0], pts[b, ..., 1])  # N,P,C
                mc = g[b, :, :C * C].reshape(N, C, C)
                ms = g[b, :, C * C:].reshape(N, P, P)
                t = F.gelu(torch.einsum('npc,ncd->npd', s, mc)
                           + sd[p + 'adaptive_mixing.m_beta'])
                t = F.gelu(torch.einsum('nqp,npc->nqc', ms, t)
                           + sd[p + 'adaptive_mixing.s_beta'].view(1, P, 1))
                out.append(t.reshape(N, P * C))
            x = x + _lin(torch.stack(out), sd, p + 'adaptive_mixing.out_proj')
    return x, roi


def reference_logits(sd, img):
    """Logits of a v1 SparseFormer given its released-layout state dict."""
    f = F.conv2d(img, sd['feat_extractor.conv1.weight'],
                 sd['feat_extractor.conv1.bias'], stride=2, padding=3)
    f = F.max_pool2d(F.relu(f), 3, 2, 1)
    mu = f.mean(1, keepdim=True)
    var = ((f - mu) ** 2).mean(1, keepdim=True)
    f = (f - mu) / torch.sqrt(var + 1e-5)
    B = img.shape[0]
    x = sd['initial_embedding.weight'].expand(B, -1, -1)
    roi = sd['initial_roi.weight'].expand(B, -1, -1)
    full = ('attn', 'roi', 'sample', 'mlp')
    for _ in range(4):
        x, roi = unit(sd, 'layers.0.', x, roi, f, full)
    x = _ln(_lin(x, sd, 'layers.1.0'), sd, 'layers.1.1')
    i = 2
    while f'layers.{i}.norm1.weight' in sd:
        ops = full if i == 2 else ('attn', 'mlp')
        x, roi = unit(sd, f'layers.{i}.', x, roi, f, ops)
        i += 1
    return _lin(_ln(x.mean(1), sd, 'norm'), sd, 'proj')


def released_layout_shapes(num_tokens=49, focus=256, cortex=512, depth=8,
                           points=36, channels=96, classes=1000):
    """Key -> shape of a released ``*_converted.pth`` (reference doc, sec. 2)."""
    shapes = {
        'feat_extractor.conv1.weight': (channels, 3, 7, 7),
        'feat_extractor.conv1.bias': (channels, ),
        'initial_roi.weight': (num_tokens, 4),
        'initial_embedding.weight': (num_tokens, focus),
        'norm.weight': (cortex, ), 'norm.bias': (cortex, ),
        'proj.weight': (classes, cortex), 'proj.bias': (classes, ),
        'layers.1.0.weight': (cortex, focus), 'layers.1.0.bias': (cortex, ),
        'layers.1.1.weight': (cortex, ), 'layers.1.1.bias': (cortex, ),
    }

    def block(i, d, sampling):
        p = f'layers.{i}.'
        s = {p + 'norm1.weight': (d, ), p + 'norm1.bias': (d, ),
             p + 'attn.qkv.weight': (3 * d, d), p + 'attn.qkv.bias': (3 * d, ),
             p + 'attn.proj.weight': (d, d), p + 'attn.proj.bias': (d, ),
             p + 'norm2.weight': (d, ), p + 'norm2.bias': (d, ),
             p + 'mlp.fc1.weight': (4 * d, d), p + 'mlp.fc1.bias': (4 * d, ),
             p + 'mlp.fc2.weight': (d, 4 * d), p + 'mlp.fc2.bias': (d, )}
        if sampling:
            g = p + 'adaptive_mixing.parameter_generator.'
            s.update({
                p + 'roi_offset_bias': (2 * points, ),
                p + 'roi_offset_module.0.weight': (d, ),
                p + 'roi_offset_module.0.bias': (d, ),
                p + 'roi_offset_module.1.weight': (2 * points, d),
                p + 'roi_adjust_module.0.weight': (d, ),
                p + 'roi_adjust_module.0.bias': (d, ),
                p + 'roi_adjust_module.1.weight': (4, d),
                p + 'adaptive_mixing.m_beta': (channels, ),
                p + 'adaptive_mixing.s_beta': (points, ),
                p + 'adaptive_mixing.out_proj.weight': (d, channels * points),
                p + 'adaptive_mixing.out_proj.bias': (d, ),
                g + '0.weight': (d, ), g + '0.bias': (d, ),
                g + '1.weight': (d // 4, d), g + '1.bias': (d // 4, ),
                g + '2.weight': (channels * channels + points * points, d // 4),
                g + '2.bias': (channels * channels + points * points, ),
            })
        return s

    shapes.update(block(0, focus, True))
    shapes.update(block(2, cortex, True))
    for i in range(3, depth + 2):
        shapes.update(block(i, cortex, False))
    return shapes


def random_released_state_dict(seed=0, **kw):
    """Random weights in the released layout, scaled to give a sensitive
    forward (non-zero RoI/offset heads, valid boxes)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in released_layout_shapes(**kw).items():
        t = torch.randn(shape, generator=g)
        if k.endswith(('norm1.weight', 'norm2.weight', 'norm.weight',
                       '1.1.weight')):
            t = 1 + 0.1 * t
        elif k == 'initial_roi.weight':
            lo = torch.rand(shape[0], 2, generator=g) * 0.5
            t = torch.cat([lo, lo + 0.3 + 0.2 * torch.rand(shape[0], 2,
                                                           generator=g)], 1)
        elif 'conv1.weight' in k:
            t = t * 0.1
        elif k.endswith('roi_offset_bias'):
            t = t * 0.5
        elif k.endswith('parameter_generator.2.bias'):
            t = t * 0.05
        elif k.endswith('.weight') and len(shape) == 2:
            t = t * (0.5 / math.sqrt(shape[1]))
        else:
            t = t * 0.02
        sd[k] = t
    return sd


# --------------------------------------------------------------------------
# Bootstrapped SparseFormers (CVPR 2024), written from the reference doc's
# section 5: the same released layout plus cls_embedding, stage_embedding,
# pe_transition, an MLP RoI head; border padding, no mixing biases.
# --------------------------------------------------------------------------
def _attn(x, sd, p, eps):
    B, N, D = x.shape
    H = D // 64
    h = _ln(x, sd, p + 'norm1', eps)
    qkv = _lin(h, sd, p + 'attn.qkv').reshape(B, N, 3, H, 64)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    a = torch.einsum('bnhd,bmhd->bhnm', q, k) / 8.0
    o = torch.einsum('bhnm,bmhd->bnhd', a.softmax(-1), v)
    return x + _lin(o.reshape(B, N, D), sd, p + 'attn.proj')


def _mlp(x, sd, p, eps, quick):
    h = _lin(_ln(x, sd, p + 'norm2', eps), sd, p + 'mlp.fc1')
    h = h * torch.sigmoid(1.702 * h) if quick else F.gelu(h)
    return x + _lin(h, sd, p + 'mlp.fc2')


def _border(feat, px, py):
    """Bilinear sampling with border padding: clamp the coordinates into
    the pixel-centre range, then the zero-padded kernel sees no outside."""
    C, H, W = feat.shape
    px = ((px * W - 0.5).clamp(0, W - 1) + 0.5) / W
    py = ((py * H - 0.5).clamp(0, H - 1) + 0.5) / H
    return bilinear(feat, px, py)


def _btsp_sampling(x, sd, p, roi, feat, eps):
    B, N, D = x.shape
    o = _ln(x, sd, p + 'roi_offset_module.0', eps) @ \
        sd[p + 'roi_offset_module.1.weight'].t() + sd[p + 'roi_offset_bias']
    o = o.reshape(B, N, -1, 2)
    o = (o - o.mean(2, keepdim=True)) / (3 * (o.std(2, keepdim=True) + 1e-5))
    pts = (roi[..., :2] + roi[..., 2:]).unsqueeze(2) / 2 + \
        o * (roi[..., 2:] - roi[..., :2]).unsqueeze(2)
    g = _ln(x, sd, p + 'adaptive_mixing.parameter_generator.0', 1e-5)
    g = _lin(_lin(g, sd, p + 'adaptive_mixing.parameter_generator.1'),
             sd, p + 'adaptive_mixing.parameter_generator.2')
    C, P = feat.shape[1], pts.shape[2]
    Q = (g.shape[-1] - C * C) // P
    out = []
    for b in range(B):
        s = _border(feat[b], pts[b, ..., 0], pts[b, ..., 1])  # N, P, C
        mc = g[b, :, :C * C].reshape(N, C, C)
        ms = g[b, :, C * C:].reshape(N, Q, P)
        t = torch.einsum('npc,ncd->npd', s, mc)  # no bias, no activation
        t = F.gelu(torch.einsum('nqp,npc->nqc', ms, t))
        out.append(t.reshape(N, Q * C))
    return x + _lin(torch.stack(out), sd, p + 'adaptive_mixing.out_proj')


def _pe(x, sd, p, roi, eps):
    D = x.shape[-1]
    freqs = torch.exp(torch.linspace(0, math.log(128), D // 4))
    ang = (roi * math.pi).unsqueeze(-1) * freqs  # B, N, 4, D/4
    pe = torch.cat([ang[..., 0::2].sin(), ang[..., 1::2].cos()], -1)
    pe = _lin(_ln(pe.flatten(2), sd, p + 'pe_transition.0', eps), sd,
              p + 'pe_transition.1')
    return x + pe


def _btsp_roi(x, sd, p, roi, eps):
    h = _ln(x, sd, p + 'roi_adjust_module.0', eps)
    h = F.gelu(_lin(h, sd, p + 'roi_adjust_module.1'))
    d = h @ sd[p + 'roi_adjust_module.3.weight'].t()
    c = (roi[..., :2] + roi[..., 2:]) / 2
    s = (roi[..., 2:] - roi[..., :2]).abs()
    c, s = c + d[..., :2] * s, s * d[..., 2:].exp()
    return torch.cat([c - s / 2, c + s / 2], -1)


def reference_btsp_output(sd, img, clip=False, eps=1e-5):
    """Logits (AugReg) or embedding (CLIP) of a bootstrapped SparseFormer
    given its released-layout state dict."""
    f = F.conv2d(img, sd['feat_extractor.conv1.weight'],
                 sd['feat_extractor.conv1.bias'], stride=2, padding=3)
    f = F.max_pool2d(F.relu(f), 3, 2, 1)
    mu = f.mean(1, keepdim=True)
    f = (f - mu) / torch.sqrt(((f - mu) ** 2).mean(1, keepdim=True) + 1e-5)
    B = img.shape[0]
    N = sd['initial_roi.weight'].shape[0]
    x = sd['initial_embedding.weight'].expand(B, N, -1)
    roi = sd['initial_roi.weight'].expand(B, -1, -1)
    for r in range(sd['layers.0.stage_embedding.weight'].shape[0]):
        x = x + sd['layers.0.stage_embedding.weight'][r]
        x = _btsp_sampling(x, sd, 'layers.0.', roi, f, eps)
        x = _pe(x, sd, 'layers.0.', roi, eps)
        x = _attn(x, sd, 'layers.0.', eps)
        x = _mlp(x, sd, 'layers.0.', eps, quick=False)
        roi = _btsp_roi(x, sd, 'layers.0.', roi, eps)
    x = _lin(x, sd, 'layers.1.0')
    x = _btsp_sampling(x, sd, 'layers.2.', roi, f, eps)
    x = _pe(x, sd, 'layers.2.', roi, eps)
    x = torch.cat([sd['cls_embedding.weight'].expand(B, 1, -1), x], 1)
    i = 3
    while f'layers.{i}.norm1.weight' in sd:
        x = _mlp(_attn(x, sd, f'layers.{i}.', eps), sd, f'layers.{i}.', eps,
                 quick=clip)
        i += 1
    return _lin(_ln(x[:, 0], sd, 'norm', eps), sd, 'proj')


def random_btsp_state_dict(seed=0, num_tokens=8, focus=64, dims=128,
                           depth=2, points=16, channels=16, out=10,
                           clip=False):
    """Random weights in the released bootstrapped layout (small)."""
    g = torch.Generator().manual_seed(seed)
    Q = max(points, 32)
    shapes = {
        'feat_extractor.conv1.weight': (channels, 3, 7, 7),
        'feat_extractor.conv1.bias': (channels, ),
        'initial_roi.weight': (num_tokens, 4),
        'initial_embedding.weight': (1, focus),
        'cls_embedding.weight': (1, dims),
        'layers.1.0.weight': (dims, focus), 'layers.1.0.bias': (dims, ),
        'norm.weight': (dims, ), 'norm.bias': (dims, ),
        'proj.weight': (out, dims),
    }
    if not clip:
        shapes['proj.bias'] = (out, )

    def block(i, d):
        p = f'layers.{i}.'
        return {p + 'norm1.weight': (d, ), p + 'norm1.bias': (d, ),
                p + 'attn.qkv.weight': (3 * d, d),
                p + 'attn.qkv.bias': (3 * d, ),
                p + 'attn.proj.weight': (d, d), p + 'attn.proj.bias': (d, ),
                p + 'norm2.weight': (d, ), p + 'norm2.bias': (d, ),
                p + 'mlp.fc1.weight': (4 * d, d),
                p + 'mlp.fc1.bias': (4 * d, ),
                p + 'mlp.fc2.weight': (d, 4 * d), p + 'mlp.fc2.bias': (d, )}

    def sampler(i, d):
        p = f'layers.{i}.'
        gen = p + 'adaptive_mixing.parameter_generator.'
        return {
            p + 'roi_offset_bias': (2 * points, ),
            p + 'roi_offset_module.0.weight': (d, ),
            p + 'roi_offset_module.0.bias': (d, ),
            p + 'roi_offset_module.1.weight': (2 * points, d),
            p + 'adaptive_mixing.out_proj.weight': (d, channels * Q),
            p + 'adaptive_mixing.out_proj.bias': (d, ),
            gen + '0.weight': (d, ), gen + '0.bias': (d, ),
            gen + '1.weight': (128, d), gen + '1.bias': (128, ),
            gen + '2.weight': (channels * channels + Q * points, 128),
            gen + '2.bias': (channels * channels + Q * points, ),
            p + 'pe_transition.0.weight': (d, ),
            p + 'pe_transition.0.bias': (d, ),
            p + 'pe_transition.1.weight': (d, d),
            p + 'pe_transition.1.bias': (d, )}

    shapes.update(block(0, focus))
    shapes.update(sampler(0, focus))
    shapes.update({'layers.0.stage_embedding.weight': (4, focus),
                   'layers.0.roi_adjust_module.0.weight': (focus, ),
                   'layers.0.roi_adjust_module.0.bias': (focus, ),
                   'layers.0.roi_adjust_module.1.weight': (focus, focus),
                   'layers.0.roi_adjust_module.1.bias': (focus, ),
                   'layers.0.roi_adjust_module.3.weight': (4, focus)})
    shapes.update(sampler(2, dims))
    for i in range(3, 3 + depth):
        shapes.update(block(i, dims))
    sd = {}
    for k, shape in shapes.items():
        t = torch.randn(shape, generator=g)
        if k.endswith('norm.weight') or (len(shape) == 1 and (
                'norm' in k or k.endswith(('0.weight', )))):
            t = 1 + 0.1 * t
        elif k == 'initial_roi.weight':
            lo = torch.rand(shape[0], 2, generator=g) * 0.5
            t = torch.cat([lo, lo + 0.3 + 0.2 * torch.rand(shape[0], 2,
                                                           generator=g)], 1)
        elif 'conv1.weight' in k:
            t = t * 0.1
        elif k.endswith('roi_offset_bias'):
            t = t * 0.5
        elif k.endswith('parameter_generator.2.bias'):
            t = t * 0.05
        elif k.endswith('.weight') and len(shape) == 2 and 'embedding' \
                not in k:
            t = t * (0.5 / math.sqrt(shape[1]))
        elif 'embedding' not in k:
            t = t * 0.02
        sd[k] = t
    return sd
