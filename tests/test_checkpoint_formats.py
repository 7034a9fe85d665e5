import os.path as osp
import subprocess
import sys

import pytest
import torch

from reference_forward import (random_released_state_dict,
                               reference_logits)
from sparseformer_mm.models import build_classifier, convert_sparseformer

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools/model_converters/sparseformer_to_mm.py')

# Original training code names (reference doc, section 2), new -> old.
TO_ORIGINAL = [('mlp.fc1', 'ffn.1'), ('mlp.fc2', 'ffn.3'), ('norm2', 'ffn.0'),
               ('norm1', 'ln_attn'), ('attn.qkv.weight', 'attn.in_proj_weight'),
               ('attn.qkv.bias', 'attn.in_proj_bias'),
               ('attn.proj', 'attn.out_proj'), ('out_proj', 'tuo_proj'),
               ('initial_roi', 'token_roi'),
               ('initial_embedding', 'token_embedding')]


def to_original_names(sd):
    out = {}
    for k, v in sd.items():
        if k.startswith('norm.'):
            k = 'head.' + k
        elif k.startswith('proj.'):
            k = 'head.classifier.' + k[5:]
        else:
            for new, old in TO_ORIGINAL:
                if new == 'out_proj' and 'adaptive_mixing' not in k:
                    continue
                k = k.replace(new, old)
        out['module.' + k] = v
    return out


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    sd = random_released_state_dict(seed=3)
    path = tmp_path_factory.mktemp('ckpt') / 'sparseformer_v1_tiny_converted.pth'
    torch.save(sd, path)
    return sd, path


@pytest.mark.slow
def test_released_layout_round_trip_is_exact(released, tmp_path):
    sd, path = released
    dst = tmp_path / 'tiny_mm.pth'
    res = subprocess.run([sys.executable, TOOL, str(path), str(dst)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    ckpt = torch.load(dst, weights_only=True)
    model = build_classifier(ckpt['meta']['arch'], 1000)
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert ckpt['meta']['arch'] == dict(num_tokens=49, focus_dims=256,
                                        cortex_dims=512, cortex_depth=8,
                                        num_points=36)
    # every released tensor lands bit-exact somewhere in the model
    state = model.state_dict()
    assert len(state) == len(sd)
    for k, v in sd.items():
        mm = ('neck.' + k if k.startswith('norm.') else
              'head.fc.' + k[5:] if k.startswith('proj.') else 'backbone.' + k)
        assert torch.equal(state[mm], v), k


@pytest.mark.parametrize('hw', [(224, 224), (160, 192)])
def test_converted_model_matches_independent_forward(released, hw):
    sd, path = released
    ckpt, arch = convert_sparseformer(str(path))
    model = build_classifier(arch, 1000).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        ours = model(x, mode='tensor')
        ref = reference_logits(sd, x)
    assert (ours - ref).abs().max() < 1e-4
    assert ref.std() > 0.1  # a forward that is not trivially flat


def test_original_training_checkpoint_with_ema(released, tmp_path):
    sd, _ = released
    ema = {k: v + 1 for k, v in sd.items()}
    path = tmp_path / 'ckpt_epoch_299.pth'
    torch.save(dict(model=to_original_names(sd),
                    model_ema=to_original_names(ema), epoch=299,
                    max_accuracy=81.0), path)
    plain, _ = convert_sparseformer(str(path))
    from_ema, _ = convert_sparseformer(str(path), ema=True)
    assert torch.equal(plain['state_dict']['backbone.layers.0.attn.qkv.weight'],
                       sd['layers.0.attn.qkv.weight'])
    assert torch.equal(from_ema['state_dict']['head.fc.weight'],
                       ema['proj.weight'])


@pytest.mark.slow
def test_wrong_file_names_the_unexpected_keys(released, tmp_path):
    sd, _ = released
    bad = dict(sd)
    bad['layers.0.extra_gate.weight'] = torch.zeros(3)
    path = tmp_path / 'bad.pth'
    torch.save(bad, path)
    with pytest.raises(ValueError, match='extra_gate'):
        convert_sparseformer(str(path))
    other = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, other)
    res = subprocess.run([sys.executable, TOOL, str(other),
                          str(tmp_path / 'x.pth')], capture_output=True,
                         text=True, cwd=REPO)
    assert res.returncode != 0
    assert 'not a SparseFormer checkpoint' in res.stderr
    assert 'conv1.weight' in res.stderr
    assert not (tmp_path / 'x.pth').exists()


def test_input_is_read_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('executed!', ))

    path = tmp_path / 'evil.pth'
    torch.save({'model': {'x': torch.zeros(1)}, 'p': Payload()}, path)
    with pytest.raises(RuntimeError, match='Refused to unpickle'):
        convert_sparseformer(str(path))


def test_flat_weights_wrapped_in_state_dict(released, tmp_path):
    sd, _ = released
    path = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': sd}, path)
    ckpt, _ = convert_sparseformer(str(path))
    assert torch.equal(ckpt['state_dict']['head.fc.bias'], sd['proj.bias'])
    empty = tmp_path / 'empty.pth'
    torch.save({'epoch': 3, 'meta': {}}, empty)
    with pytest.raises(ValueError, match="holds no tensors.*'epoch'"):
        convert_sparseformer(str(empty))


def test_build_classifier_after_an_mmaction_scope():
    """A script that ran an mmaction2 Runner first leaves its scope current;
    building the image classifier must not depend on that."""
    from mmengine.registry import DefaultScope
    from sparseformer_mm.models import build_classifier
    arch = dict(num_tokens=4, focus_dims=64, cortex_dims=128, cortex_depth=1,
                num_points=4)
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = build_classifier(arch, 3)
    assert type(model).__name__ == 'ImageClassifier'
    assert model.head.fc.out_features == 3
