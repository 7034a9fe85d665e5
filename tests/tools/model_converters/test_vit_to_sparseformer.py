"""tools/model_converters/vit_to_sparseformer.py on real timm, open_clip and
mmpretrain ViTs with random weights (nothing is downloaded).

Each source is saved as its library saves it, converted by running the
tool, and the result is checked against the source modules themselves:
inherited tensors bit for bit, inherited blocks, final norm, head and class
token by what they compute.
"""
import contextlib
import io
import os.path as osp
import subprocess
import sys

import pytest
import timm
import torch
from mmengine.registry import DefaultScope
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import QuickGELU, VisionTransformer

from converter_modules import load_module
from sparseformer_mm.models import build_classifier
from sparseformer_mm.models.layers import TokenState

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(REPO, 'tools/model_converters/vit_to_sparseformer.py')
WIDTH = 128  # two 64-d heads


def load_tool():
    return load_module('vit_to_sparseformer', fresh=True)


def run_tool(*argv):
    """Run the tool's main in this process; its error message, or None."""
    try:
        load_tool().main([str(a) for a in argv])
    except SystemExit as e:
        return str(e.code)
    return None


@torch.no_grad()
def randomize(module, seed, fp16_exact=False):
    """Random values in every parameter at a trained ViT's scale, LayerNorm
    weights too (around 1), so that a wrongly mapped tensor shows;
    ``fp16_exact``: values fp16 can hold."""
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    for m in module.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.add_(1)
    if fp16_exact:
        for p in module.parameters():
            p.copy_(p.half().float())
    return module


def close(got, want):
    """Within 1e-6 of the values' scale (float32 sums in another order)."""
    return (got - want).abs().max() <= 1e-6 * max(1.0, want.abs().max())


def timm_vit(name, **kwargs):
    kwargs = dict(dict(depth=6, embed_dim=WIDTH, num_heads=2, img_size=32,
                       num_classes=10), **kwargs)
    return randomize(timm.create_model(name, pretrained=False, **kwargs), 1)


# --- the sources: how each library names what the converter carries -------
def timm_parts(m):
    return dict(blocks=list(m.blocks), norm=m.norm, head=m.head,
                cls=m.cls_token, run=lambda blk, x: blk(x),
                params=lambda b: dict(
                    norm1=b.norm1, qkv=b.attn.qkv, proj=b.attn.proj,
                    norm2=b.norm2, fc1=b.mlp.fc1, fc2=b.mlp.fc2))


def clip_parts(visual):
    def run(blk, x):  # OpenAI's original blocks are sequence-first
        if blk.attn.batch_first:
            return blk(x)
        return blk(x.transpose(0, 1)).transpose(0, 1)

    def params(b):
        qkv = torch.nn.Linear(WIDTH, 3 * WIDTH)
        qkv.weight, qkv.bias = b.attn.in_proj_weight, b.attn.in_proj_bias
        return dict(norm1=b.ln_1, qkv=qkv, proj=b.attn.out_proj,
                    norm2=b.ln_2, fc1=b.mlp.c_fc, fc2=b.mlp.c_proj)

    return dict(blocks=list(visual.transformer.resblocks),
                norm=visual.ln_post, head=lambda z: z @ visual.proj,
                cls=visual.class_embedding, run=run, params=params)


def mmpretrain_parts(c):
    vit = c.backbone
    return dict(blocks=list(vit.layers), norm=vit.ln1,
                head=c.head.layers.head, cls=vit.cls_token,
                run=lambda blk, x: blk(x),
                params=lambda b: dict(
                    norm1=b.ln1, qkv=b.attn.qkv, proj=b.attn.proj,
                    norm2=b.ln2, fc1=b.ffn.layers[0][0],
                    fc2=b.ffn.layers[1]))


def make_sources(tmp):
    """name -> (source parts, saved file, expectations)."""
    out = {}
    m = timm_vit('vit_base_patch16_224.augreg_in21k')
    torch.save(m.state_dict(), tmp / 'timm_augreg.pth')
    out['timm'] = (timm_parts(m), tmp / 'timm_augreg.pth',
                   dict(layout='timm', depth=6, eps=1e-6, act='gelu',
                        head_bias=True, num_classes=10))

    # OpenAI weights in timm: QuickGELU, pre-norm, eps 1e-5, and the zero
    # head bias timm's conversion adds to CLIP's projection.
    m = timm_vit('vit_base_patch16_clip_quickgelu_224.openai',
                 num_classes=64)
    torch.nn.init.zeros_(m.head.bias)
    torch.save(m.state_dict(), tmp / 'timm_clip.pth')
    out['timm_clip'] = (timm_parts(m), tmp / 'timm_clip.pth',
                        dict(layout='timm', depth=6, eps=1e-5,
                             act='quick_gelu', head_bias=False,
                             num_classes=64))

    # A whole (tiny) OpenAI-style CLIP model, text tower included, stored
    # in fp16 as OpenAI's releases are.
    clip = CLIP(embed_dim=64, quick_gelu=True,
                vision_cfg=CLIPVisionCfg(layers=6, width=WIDTH, head_width=64,
                                         patch_size=16, image_size=32),
                text_cfg=CLIPTextCfg(context_length=8, vocab_size=64,
                                     width=64, heads=1, layers=1))
    randomize(clip, 2, fp16_exact=True)
    torch.save({k: v.half() for k, v in clip.state_dict().items()},
               tmp / 'openai_clip.pth')
    out['open_clip'] = (clip_parts(clip.visual), tmp / 'openai_clip.pth',
                        dict(layout='openai_clip', depth=6, eps=1e-5,
                             act='quick_gelu', head_bias=False,
                             num_classes=64))

    # A bare visual tower (no 'visual.' prefix), sequence-first blocks, and
    # a depth not divisible by 3.
    tower = VisionTransformer(image_size=32, patch_size=16, width=WIDTH,
                              layers=7, heads=2, mlp_ratio=4, output_dim=32,
                              act_layer=QuickGELU)
    for blk in tower.transformer.resblocks:
        blk.attn.batch_first = False
    randomize(tower, 3)
    torch.save(tower.state_dict(), tmp / 'clip_tower.pth')
    out['clip_tower'] = (clip_parts(tower), tmp / 'clip_tower.pth',
                         dict(layout='openai_clip', depth=7, eps=1e-5,
                              act='quick_gelu', head_bias=False,
                              num_classes=32))

    # An mmpretrain checkpoint as its Runner writes it; a bias-free qkv.
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        c = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', arch=dict(
                embed_dims=WIDTH, num_layers=6, num_heads=2,
                feedforward_channels=4 * WIDTH), img_size=32, patch_size=16,
                qkv_bias=False),
            head=dict(type='VisionTransformerClsHead', num_classes=10,
                      in_channels=WIDTH)))
    randomize(c, 4)
    torch.save(dict(meta=dict(epoch=3), state_dict=c.state_dict()),
               tmp / 'mmpretrain_vit.pth')
    out['mmpretrain'] = (mmpretrain_parts(c), tmp / 'mmpretrain_vit.pth',
                         dict(layout='mmpretrain', depth=6, eps=1e-6,
                              act='gelu', head_bias=True, num_classes=10))
    return out


# Run as commands, as a user would; the others run in this process (most of
# a command's time is importing the stack).
COMMANDS = ('timm', 'open_clip')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Every source converted by the tool."""
    tmp = tmp_path_factory.mktemp('vit')
    torch.manual_seed(0)
    sources = make_sources(tmp)
    dst = {name: tmp / f'{name}_btsp.pth' for name in sources}
    procs = {name: subprocess.Popen(
        [sys.executable, TOOL, str(sources[name][1]), str(dst[name])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        for name in COMMANDS}
    stdout = {}
    for name in sources:
        if name not in COMMANDS:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                err = run_tool(sources[name][1], dst[name])
            assert err is None, f'{name}: {err}'
            stdout[name] = out.getvalue()
    for name, proc in procs.items():
        stdout[name], stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f'{name}: {stderr}'
    results = {}
    for name, (parts, _, want) in sources.items():
        ckpt = torch.load(dst[name], weights_only=True)
        meta = ckpt['meta']
        model = build_classifier(meta['arch'], meta['num_classes'],
                                 meta['head_bias']).eval()
        model.load_state_dict(ckpt['state_dict'], strict=True)
        results[name] = dict(parts=parts, want=want, ckpt=ckpt, model=model,
                             stdout=stdout[name])
    return results


SOURCES = ['timm', 'timm_clip', 'open_clip', 'clip_tower', 'mmpretrain']


@pytest.mark.parametrize('name', SOURCES)
def test_meta_and_arch_follow_the_source(converted, name):
    r = converted[name]
    meta, want = r['ckpt']['meta'], r['want']
    first = want['depth'] // 3
    assert meta['source_layout'] == want['layout']
    assert meta['source_blocks'] == list(range(first, want['depth']))
    assert meta['layers'] == [3 + j for j in range(want['depth'] - first)]
    assert (meta['num_classes'], meta['head_bias']) == (
        want['num_classes'], want['head_bias'])
    last = meta['arch']['stages'][-1]
    assert last['cls_token'] and last['width'] == WIDTH
    assert last['depth'] == want['depth'] - first
    assert last['eps'] == want['eps'] == meta['inherited_eps']
    assert last['mlp_act'] == want['act']
    assert meta['arch']['stages'][0]['width'] == WIDTH // 2
    assert meta['arch']['num_tokens'] == 48
    # The focusing and bridge units keep the bootstrapped template's eps.
    assert [st['eps'] for st in meta['arch']['stages'][:2]] == [1e-5, 1e-5]
    head = type(r['model'].head).__name__
    assert head == ('LinearClsHead' if want['head_bias']
                    else 'ZeroShotClsHead')
    assert 'detected: ' in r['stdout']
    if want['depth'] % 3:
        assert 'not divisible by 3' in r['stdout']
    if name == 'open_clip':
        assert "ignored" in r['stdout'] and 'visual.' in r['stdout']


@pytest.mark.parametrize('name', SOURCES)
def test_inherited_tensors_are_the_source_tensors(converted, name):
    r = converted[name]
    parts, model = r['parts'], r['model']
    first = r['want']['depth'] // 3
    for j, blk in enumerate(parts['blocks'][first:]):
        unit = model.backbone.layers[3 + j]
        ours = dict(norm1=unit.norm1, qkv=unit.attn.qkv,
                    proj=unit.attn.proj, norm2=unit.norm2,
                    fc1=unit.mlp.fc1, fc2=unit.mlp.fc2)
        for key, theirs in parts['params'](blk).items():
            assert torch.equal(ours[key].weight, theirs.weight), (j, key)
            if theirs.bias is None:  # mmpretrain's qkv_bias=False
                assert not ours[key].bias.any(), (j, key)
            else:
                assert torch.equal(ours[key].bias, theirs.bias), (j, key)
    assert torch.equal(model.backbone.cls_embedding.weight,
                       parts['cls'].reshape(1, WIDTH))
    assert torch.equal(model.neck.norm.weight, parts['norm'].weight)
    assert torch.equal(model.neck.norm.bias, parts['norm'].bias)


@pytest.mark.parametrize('name', SOURCES)
@torch.no_grad()
def test_inherited_blocks_compute_the_source_blocks(converted, name):
    r = converted[name]
    parts, model = r['parts'], r['model']
    first = r['want']['depth'] // 3
    x = torch.randn(2, 7, WIDTH)
    for j, blk in enumerate(parts['blocks'][first:]):
        blk.eval()
        want = parts['run'](blk, x)
        got = model.backbone.layers[3 + j](TokenState(None, x, None)).tokens
        assert close(got, want), (name, j, (got - want).abs().max())
        x = want
    # The final norm (the neck on the class token) and the head.
    assert close(model.neck((x, ))[0], parts['norm'](x[:, 0]))
    z = torch.randn(3, WIDTH)
    assert close(model.head.fc(z), parts['head'](z))


@pytest.mark.parametrize('name', ['timm', 'open_clip'])
@torch.no_grad()
def test_converted_model_runs_on_images(converted, name):
    r = converted[name]
    out = r['model'](torch.randn(2, 3, 64, 64), mode='tensor')
    assert out.shape == (2, r['want']['num_classes'])
    assert torch.isfinite(out).all()


def test_the_rest_is_the_seeded_reference_init(converted):
    r = converted['timm']
    meta, sd = r['ckpt']['meta'], r['ckpt']['state_dict']
    torch.manual_seed(meta['seed'])
    ref = build_classifier(meta['arch'], meta['num_classes']).state_dict()
    inherited = {f'backbone.layers.{k}.' for k in meta['layers']}
    fresh = [k for k in sd if not k.startswith(tuple(inherited))
             and k.startswith('backbone.')
             and k != 'backbone.cls_embedding.weight']
    assert any(k.startswith('backbone.layers.0.') for k in fresh)
    assert any(k.startswith('backbone.feat_extractor.') for k in fresh)
    for k in fresh:
        assert torch.equal(sd[k], ref[k]), k


# --- in-process runs: options and errors ------------------------------------
def convert_in_process(tmp_path, model, *options, suffix='.pth'):
    src = tmp_path / f'src{suffix}'
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(model.state_dict(), str(src))
    else:
        torch.save(model.state_dict(), src)
    dst = tmp_path / 'dst.pth'
    err = run_tool(src, dst, *options)
    assert err is None, err
    ckpt = torch.load(dst, weights_only=True)
    meta = ckpt['meta']
    ours = build_classifier(meta['arch'], meta['num_classes'],
                            meta['head_bias']).eval()
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    return ours, meta


@torch.no_grad()
def block_diff(ours, source, meta):
    """Largest difference between our first inherited block and its source
    block on the same tokens."""
    x = torch.randn(2, 5, source.embed_dim)
    blk = source.blocks[meta['source_blocks'][0]].eval()
    got = ours.backbone.layers[meta['layers'][0]](
        TokenState(None, x, None)).tokens
    return (got - blk(x)).abs().max().item()


def test_mlp_act_follows_the_source_activation(tmp_path):
    """The weights do not say GELU or QuickGELU: timm's plain CLIP model
    runs GELU on OpenAI weights. --mlp-act gelu matches it; the CLIP
    default (QuickGELU) computes something else."""
    m = timm_vit('vit_base_patch16_clip_224.openai', depth=3,
                 num_classes=16).eval()
    ours, meta = convert_in_process(tmp_path, m, '--mlp-act', 'gelu')
    assert meta['mlp_act'] == 'gelu' and meta['inherited_eps'] == 1e-5
    assert block_diff(ours, m, meta) < 1e-6
    ours, meta = convert_in_process(tmp_path, m)
    assert meta['mlp_act'] == 'quick_gelu'
    assert block_diff(ours, m, meta) > 1e-4


def test_heads_width_and_new_head_options(tmp_path, capsys):
    """A width that is not a multiple of 64 (48-d heads), read from a
    .safetensors file, with a new 5-class head."""
    m = timm_vit('vit_base_patch16_224.augreg_in21k', depth=3, embed_dim=96,
                 num_heads=2).eval()
    src = tmp_path / 'src.pth'
    torch.save(m.state_dict(), src)
    err = run_tool(src, tmp_path / 'x.pth', '--focus-dims', '64')
    assert '--source-heads' in err and 'not a multiple of 64' in err
    err = run_tool(src, tmp_path / 'x.pth', '--source-heads', '2')
    assert 'focus_dims=48' in err and '--focus-dims' in err
    ours, meta = convert_in_process(
        tmp_path, m, '--source-heads', '2', '--focus-dims', '64',
        '--num-classes', '5', suffix='.safetensors')
    last = meta['arch']['stages'][-1]
    assert last['num_heads'] == 2 and 'head_dims' not in last
    assert block_diff(ours, m, meta) < 1e-6
    assert meta['head'] == 'new' and meta['num_classes'] == 5
    assert ours.head.fc.out_features == 5
    assert not torch.equal(ours.head.fc.weight[:5], m.head.weight[:5])


def test_eps_is_the_sources_unless_asked(tmp_path):
    """AugReg's LayerNorm eps is 1e-6; the bootstrapped archs' 1e-5 would
    change what an inherited block computes."""
    m = timm_vit('vit_base_patch16_224.augreg_in21k', depth=3).eval()
    ours, meta = convert_in_process(tmp_path, m)
    assert meta['inherited_eps'] == meta['source_eps'] == 1e-6
    assert ours.neck.norm.eps == 1e-6
    assert block_diff(ours, m, meta) < 1e-6
    ours, meta = convert_in_process(tmp_path, m, '--arch-eps')
    assert meta['inherited_eps'] == 1e-5 and meta['source_eps'] == 1e-6
    assert block_diff(ours, m, meta) > 1e-6


def test_errors_name_the_file_the_keys_and_the_fix(tmp_path):
    other = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(8, 3, 7, 7),
                'fc.weight': torch.zeros(10, 8)}, other)
    err = run_tool(other, tmp_path / 'x.pth')
    assert str(other) in err and 'conv1.weight' in err
    assert 'Expected one of' in err and 'visual.transformer.resblocks' in err
    assert not (tmp_path / 'x.pth').exists()

    ls = timm_vit('vit_base_patch16_224.augreg_in21k', depth=3,
                  init_values=1e-5)
    path = tmp_path / 'layerscale.pth'
    torch.save(ls.state_dict(), path)
    err = run_tool(path, tmp_path / 'x.pth')
    assert 'blocks.0.ls1.gamma' in err and 'LayerScale' in err

    m = timm_vit('vit_base_patch16_224.augreg_in21k', depth=3)
    path = tmp_path / 'small.pth'
    torch.save(m.state_dict(), path)
    err = run_tool(path, tmp_path / 'x.pth', '--arch', 'btsp-augreg-base')
    assert "'btsp-augreg-base' does not fit" in err
    assert "width 768 (the ViT's: 128)" in err
    err = run_tool(path, tmp_path / 'x.pth', '--arch', 'tiny')
    assert 'not a bootstrapped arch' in err and 'btsp-clip-large' in err

    # the output path is the input: refused, the ViT untouched
    before = path.read_bytes()
    err = run_tool(path, path)
    assert 'is the input' in err and path.read_bytes() == before
    link = tmp_path / 'link.pth'
    link.symlink_to(path)
    err = run_tool(path, link)
    assert 'is the input' in err and path.read_bytes() == before

    jit = tmp_path / 'ViT-B-16.pt'  # OpenAI's releases are TorchScript
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(jit))
    err = run_tool(jit, tmp_path / 'x.pth')
    assert 'TorchScript archive' in err and 'state_dict()' in err

    headless = timm_vit('vit_base_patch16_224.augreg_in21k', depth=3,
                        num_classes=0)
    path = tmp_path / 'headless.pth'
    torch.save(headless.state_dict(), path)
    err = run_tool(path, tmp_path / 'x.pth')
    assert 'no classifier or projection' in err and '--num-classes' in err
