"""tools/model_converters/vit_import.py: the ViT layouts, the checks of
what a bootstrapped SparseFormer can carry over, the arch for a ViT (the
converter's tests in test_vit_to_sparseformer.py run real timm / open_clip /
mmpretrain models)."""
import pytest
import torch

from converter_modules import load_module
from sparseformer_mm.archs import ARCH_ZOO, zoo_name

vit_import = load_module('vit_import')


def vit_source(depth, width, clip=False, layout='timm'):
    """What read_vit reports for a ViT of this shape (no tensors)."""
    return vit_import.ViTSource(vit_import.VIT_LAYOUTS[layout], {}, '', [], depth, width,
                     4 * width, True, clip, None, 1000, True)


def test_vit_b_and_l_give_the_zoo_bootstrapped_archs():
    bootstrap_arch = vit_import.bootstrap_arch
    # CLIP ViT-B/16: eps 1e-5 and QuickGELU, as the bootstrapped archs.
    vit_b = vit_source(12, 768, clip=True, layout='openai_clip')
    arch = bootstrap_arch(vit_b, 4, eps=1e-5, mlp_act='quick_gelu',
                          num_heads=12)
    assert zoo_name(arch) == 'btsp-clip-base'
    # AugReg ViT-L/16 (eps 1e-6): the zoo arch with the source's eps in
    # the inherited stage only.
    vit_l = vit_source(24, 1024)
    arch = bootstrap_arch(vit_l, 8, eps=1e-6, mlp_act='gelu', num_heads=16)
    zoo = ARCH_ZOO['btsp-augreg-large']
    assert arch['stages'][:-1] == zoo['stages'][:-1]
    assert arch['stages'][-1] == dict(zoo['stages'][-1], eps=1e-6)
    assert zoo_name(arch) is None
    arch = bootstrap_arch(vit_l, 8, eps=None, mlp_act='gelu', num_heads=16)
    assert zoo_name(arch) == 'btsp-augreg-large'
    assert ARCH_ZOO['btsp-augreg-large']['stages'][-1]['eps'] == 1e-5


def test_fit_bootstrap_arch_checks_what_the_blocks_need():
    fit_bootstrap_arch = vit_import.fit_bootstrap_arch
    vit_b = vit_source(12, 768)
    assert fit_bootstrap_arch('btsp-augreg-base', vit_b, 4, eps=None,
                              mlp_act='gelu', num_heads=12) \
        == ARCH_ZOO['btsp-augreg-base']
    arch = fit_bootstrap_arch('btsp-augreg-base', vit_b, 4, eps=1e-6,
                              mlp_act='gelu', num_heads=12)
    assert arch['stages'][-1]['eps'] == 1e-6
    assert arch['stages'][0]['eps'] == 1e-5
    vit_l = vit_source(24, 1024, clip=True, layout='openai_clip')
    arch = fit_bootstrap_arch('btsp-clip-large', vit_l, 8, eps=1e-5,
                              mlp_act='quick_gelu', num_heads=16)
    assert zoo_name(arch) == 'btsp-clip-large'
    with pytest.raises(ValueError, match=r"MLP activation quick_gelu "
                       r"\(the ViT's: gelu"):
        fit_bootstrap_arch('btsp-clip-base', vit_b, 4, eps=None,
                           mlp_act='gelu', num_heads=12)
    with pytest.raises(ValueError, match=r"inherited blocks 8 \(the "
                       r"ViT's: 12 - 3 = 9\)"):
        fit_bootstrap_arch('btsp-augreg-base', vit_b, 3, eps=None,
                           mlp_act='gelu', num_heads=12)


def synthetic_vit(layout_name, depth=3, width=64, head=None, extra=()):
    """A state dict in one of the ViT layouts, random tensors."""
    layout = vit_import.VIT_LAYOUTS[layout_name]
    shapes = {'attn.qkv.weight': (3 * width, width),
              'attn.qkv.bias': (3 * width, ),
              'attn.proj.weight': (width, width),
              'mlp.fc1.weight': (4 * width, width),
              'mlp.fc1.bias': (4 * width, ),
              'mlp.fc2.weight': (width, 4 * width)}
    sd = {layout.block.format(i) + theirs: torch.randn(shapes.get(ours,
                                                                  (width, )))
          for i in range(depth) for ours, theirs in layout.unit.items()}
    sd[layout.cls_token] = torch.randn(1, 1, width)
    sd[layout.norm + 'weight'] = torch.randn(width)
    sd[layout.norm + 'bias'] = torch.randn(width)
    sd.update(head or {})
    sd.update({k: torch.zeros(2) for k in extra})
    return sd


def test_read_vit_heads_and_prefixes():
    read_vit, vit_to_bootstrap = vit_import.read_vit, vit_import.vit_to_bootstrap
    # timm's OpenAI conversion adds a zero bias to CLIP's projection: a
    # projection; a fine-tuned CLIP classifier keeps its bias; so does a
    # plain ViT's classifier even when it is zero.
    for pre_norm, bias, head_bias in ((True, 0, False), (True, 1, True),
                                      (False, 0, True)):
        sd = synthetic_vit('timm', head={'head.weight': torch.randn(7, 64),
                                         'head.bias': torch.full((7, ),
                                                                 bias)},
                           extra=['norm_pre.weight'] if pre_norm else [])
        src = read_vit(sd)
        assert (src.clip, src.head_out, src.head_bias) == (pre_norm, 7,
                                                           head_bias)
        out, _ = vit_to_bootstrap(src, 1, 3)
        assert ('head.fc.bias' in out) == head_bias
    # A whole CLIP model: the tower under 'visual.', its proj transposed,
    # the text tower (bare 'transformer.resblocks') ignored.
    tower = synthetic_vit('openai_clip', head={'proj': torch.randn(64, 5)})
    text = synthetic_vit('openai_clip', width=32)
    sd = {**{'visual.' + k: v for k, v in tower.items()}, **text}
    src = read_vit(sd, 'clip.pt')
    assert src.prefix == 'visual.' and src.clip and not src.head_bias
    assert sorted(src.ignored) == sorted(text)
    out, taken = vit_to_bootstrap(src, 1, 3)
    assert torch.equal(out['head.fc.weight'], tower['proj'].t())
    assert taken['head.fc.weight'] == 'visual.proj (transposed)'
    assert taken['backbone.layers.4.attn.qkv.weight'] == \
        'visual.transformer.resblocks.2.attn.in_proj_weight'
    # mmpretrain with a LinearClsHead; a hidden head layer is refused
    # unless a new head is asked for.
    sd = synthetic_vit('mmpretrain', head={'head.fc.weight': torch.randn(
        4, 64), 'head.fc.bias': torch.randn(4)})
    assert read_vit(sd).head.weight == 'head.fc.weight'
    sd = synthetic_vit('mmpretrain', head={
        'head.layers.pre_logits.weight': torch.randn(64, 64),
        'head.layers.head.weight': torch.randn(4, 64)})
    with pytest.raises(ValueError, match='pre_logits.*--num-classes'):
        read_vit(sd, 'vit.pth')
    assert read_vit(sd, carry_head=False).head is None
