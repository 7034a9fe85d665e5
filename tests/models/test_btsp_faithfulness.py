"""Bootstrapped SparseFormers against an independent forward
(tests/reference_forward.py), through the released-weights converter."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from reference_forward import random_btsp_state_dict, reference_btsp_output
from sparseformer_mm.models import build_classifier

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
@pytest.mark.parametrize('clip', [False, True])
def test_released_btsp_weights_convert_and_match(tmp_path, clip):
    sd = random_btsp_state_dict(seed=4, clip=clip)
    src = tmp_path / 'sparseformer_btsp_converted.pth'
    dst = tmp_path / 'mm.pth'
    torch.save(sd, src)
    res = subprocess.run([sys.executable, 'tools/model_converters/'
                          'sparseformer_to_mm.py', str(src), str(dst)],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ckpt = torch.load(dst, weights_only=True)
    meta = ckpt['meta']
    assert meta['head_bias'] is (not clip)
    assert meta['arch']['stages'][-1]['mlp_act'] == (
        'quick_gelu' if clip else 'gelu')
    model = build_classifier(meta['arch'], meta['num_classes'],
                             meta['head_bias']).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    for hw in [(64, 64), (48, 80)]:  # and another aspect ratio
        x = torch.randn(2, 3, *hw)
        with torch.no_grad():
            got = model(x, mode='tensor')
            want = reference_btsp_output(sd, x, clip=clip)
        assert got.shape == (2, 10)
        assert (got - want).abs().max() < 1e-4, hw
        assert want.std() > 0.1
