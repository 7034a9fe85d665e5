"""tools/analysis_tools/benchmark.py end to end on tiny inputs: its JSON,
markdown, plots and doc page parse and agree (timings are not asserted)."""
import json
import os.path as osp
import re
import subprocess
import sys

from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NANO = 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py'


def test_benchmark_writes_consistent_reports(tmp_path):
    out, doc = tmp_path / 'bench', tmp_path / 'docs' / 'benchmarks.md'
    res = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark.py', '--groups',
         'image', 'image_resolution', '--models', NANO, 'swin-t',
         '--resolutions', '64', '96', '--image-batch', '1', '--repeats', '2',
         '--warmup', '0', '--out-dir', str(out), '--doc', str(doc)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r'\[\s*1/\d+\] .* elapsed', res.stdout)  # progress
    data = json.loads((out / 'benchmark.json').read_text())
    rows = data['results']
    # image group: one view (first resolution); sweep: both resolutions
    assert [(r['group'], r['resolution']) for r in rows] == [
        ('image', 64), ('image', 64), ('image_resolution', 64),
        ('image_resolution', 64), ('image_resolution', 96),
        ('image_resolution', 96)]
    by = {(r['group'], r['model'], r['resolution']): r for r in rows}
    for group, res_ in (('image', 64), ('image_resolution', 96)):
        nano, peer = by[(group, NANO, res_)], by[(group, 'swin-t', res_)]
        assert peer['infer_fp32']['ratio'] == 1.0
        assert nano['infer_fp32']['ratio'] == (
            nano['infer_fp32']['throughput'] /
            peer['infer_fp32']['throughput'])
    detail = by[('image', NANO, 64)]
    assert {'infer_fp32', 'latency_fp32', 'infer_bf16', 'train_fp32'} <= set(
        detail)
    assert detail['latency_fp32']['batch'] == 1
    assert detail['params'] < by[('image', 'swin-t', 64)]['params']
    assert detail['paper'] < detail['full']  # mixing bmm only in "full"
    assert data['machine']['device'] == 'cpu'
    table = (out / 'benchmark.md').read_text()
    assert f'| {NANO} | 64x64 |' in table and '(**1.00×**)' in table
    png = doc.parent / 'images' / 'benchmark_image_resolution.png'
    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 200
    page = doc.read_text()
    assert '](images/benchmark_image_resolution.png)' in page
    assert 'make benchmark' in page and '| swin-t | 96x96 |' in page
