"""projects/bootstrapping/bootstrap_demo.py (``make demo-bootstrap``) runs end to
end in its tiny mode: teacher -> converter -> label-free bootstrapping ->
labelled v1 for the same time -> video, and what it hands from one stage
to the next is what the next one uses."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from data_helpers import REPO

pytestmark = pytest.mark.slow  # process-level: see pytest.ini
# one intra-op thread: tiny models, and a CPU shared with other jobs
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def test_bootstrap_demo_quick(tmp_path):
    out = tmp_path / 'demo'
    res = subprocess.run(
        [sys.executable, '-m', 'projects.bootstrapping.bootstrap_demo',
         '--out', str(out), '--quick'],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out / 'results.json') as f:
        r = json.load(f)
    for key in ('teacher', 'bootstrap', 'v1', 'video'):
        run = r[key]
        assert osp.isfile(run['checkpoint']), key
        assert run['val_acc'] and run['seconds'] > 0, key
        assert all(0 <= acc <= 100 for _, _, acc in run['val_acc']), key
        assert run['final_acc'] == run['val_acc'][-1][2]
    assert r['v1']['planned_epochs'] >= 1

    teacher = torch.load(out / 'teacher.pth', weights_only=False)
    teacher = teacher['state_dict']  # timm's keys (TimmClassifier)
    init = torch.load(out / 'student_init.pth', weights_only=False)
    # the student starts with the teacher's blocks 2-5 (layers 3-6)
    assert init['meta']['source_blocks'] == [2, 3, 4, 5]
    for block, layer in zip(range(2, 6), range(3, 7)):
        for name in ('attn.qkv.weight', 'mlp.fc2.weight', 'norm1.bias'):
            assert torch.equal(
                init['state_dict'][f'backbone.layers.{layer}.{name}'],
                teacher[f'blocks.{block}.{name}'])
    # bootstrapping never touched the teacher nor the frozen last blocks
    boot = torch.load(r['bootstrap']['checkpoint'],
                      weights_only=False)['state_dict']
    for k, v in teacher.items():
        assert torch.equal(boot['teacher.model.' + k], v), k
    frozen = [k for k in init['state_dict']
              if k.startswith(('backbone.layers.5.', 'backbone.layers.6.'))]
    assert frozen
    for k in frozen:
        assert torch.equal(boot['student.' + k], init['state_dict'][k]), k
    # the labelled comparison is a v1 SparseFormer of the student's widths
    v1 = torch.load(r['v1']['checkpoint'], weights_only=False)['state_dict']
    assert 'backbone.cls_embedding.weight' not in v1
    assert v1['head.fc.weight'].shape == (4, 96)

    with open(out / 'summary.md') as f:
        table = f.read()
    rows = [line for line in table.splitlines() if line.startswith('| ')]
    assert len(rows) == 4  # header + teacher, student, v1
    assert osp.isfile(out / 'curves.png')
