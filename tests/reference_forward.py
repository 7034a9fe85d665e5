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
