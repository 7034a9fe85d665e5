"""projects/benchmarks/data_benchmark.py end to end on a tiny run (the demo
video config's pipelines and model, a 1.2 s source): its JSON, markdown and
doc section agree, the backends' outputs are compared, and the workers a
model needs follow from the two rates (timings are not asserted)."""
import json
import math
import os.path as osp

import pytest

from data_helpers import REPO
from projects.benchmarks import data_benchmark as bench

pytest.importorskip('av', reason='PyAV is not installed (requirements/'
                    'runtime.txt lists it; run make install)')
DEMO = osp.join(REPO, 'configs/demo/'
                'videosparseformer-nano_1xb16-4x8x1-6e_motion.py')


def test_tiny_run_writes_consistent_reports(tmp_path):
    doc = tmp_path / 'decoding.md'
    doc.write_text(f'# Decoding\n\nbefore\n{bench.BEGIN}\nold table\n'
                   f'{bench.END}\nafter\n')
    out = tmp_path / 'bench'
    data = bench.main([
        '--config', DEMO, '--backends', 'decord', 'pyav', '--seconds', '1.2',
        '--content', 'drawn',
        '--fps', '25', '--size', '320x240', '--short-side', '160',
        '--train-clips', '2', '--test-clips', '1', '--min-cpu', '0',
        '--model-steps', '1',
        '--out-dir', str(out), '--doc', str(doc)])
    saved = json.loads((out / 'data_benchmark.json').read_text())
    assert saved['rows'] == data['rows']
    srcs = saved['sources']
    assert list(srcs) == ['720p', '320p-h264', '320p-mp4v']
    assert (srcs['720p']['codec'], srcs['720p']['width'],
            srcs['720p']['height'], srcs['720p']['frames']) == (
                'h264', 320, 240, 30)
    assert srcs['720p']['made_from'].startswith('drawn content')
    # short side 160 as resize_videos.py writes it, in both codecs
    assert (srcs['320p-h264']['codec'], srcs['320p-mp4v']['codec']) == (
        'h264', 'mpeg4')
    for s in ('320p-h264', '320p-mp4v'):
        assert (srcs[s]['width'], srcs[s]['height']) == (214, 160)
    rows = saved['rows']
    assert [(r['source'], r['pipeline'], r['backend']) for r in rows] == [
        (s, p, b) for s in srcs for p in ('train', 'test')
        for b in ('decord', 'pyav')]
    for r in rows:
        assert r['identical'] and r['clips_per_s'] > 0
        assert r['clips'] == (2 if r['pipeline'] == 'train' else 1)
        assert r['views_x_frames'] == ('1x4' if r['pipeline'] == 'train'
                                       else '2x4')
    model = saved['model']
    assert model['clips_per_s'] == pytest.approx(1 / model['step_s'],
                                                 rel=1e-2)
    table = (out / 'data_benchmark.md').read_text()
    page = doc.read_text()
    assert page.startswith('# Decoding\n\nbefore\n' + bench.BEGIN + '\n')
    assert page.endswith(bench.END + '\nafter\n')
    assert 'old table' not in page and table.strip() in page
    # workers a GPU needs: the model's rate over one worker's, rounded up
    for src in srcs:
        need = [max(1, math.ceil(model['clips_per_s'] / r['clips_per_s']))
                for r in rows if r['source'] == src
                and r['pipeline'] == 'train']
        assert f'| {src} | {need[0]} | {need[1]} |' in table
    # a second run reuses the videos
    made = sorted(p.name for p in (out / 'videos').iterdir())
    bench.prepare_sources(str(out / 'videos'), list(srcs), 1.2, 25, 320,
                          240, 160, content='drawn')
    assert sorted(p.name for p in (out / 'videos').iterdir()) == made


def test_workers_needed():
    assert bench.workers_needed(10.0, 2.5) == 4
    assert bench.workers_needed(10.0, 3.0) == 4
    assert bench.workers_needed(0.1, 3.0) == 1


def test_bad_arguments_say_what_to_change(tmp_path):
    doc = tmp_path / 'page.md'
    doc.write_text('# no markers\n')
    with pytest.raises(ValueError, match='add the lines'):
        bench.write_doc_section(str(doc), 'x')
    with pytest.raises(SystemExit, match='--video .*missing.mp4: no such'):
        bench.main(['--video', str(tmp_path / 'missing.mp4'),
                    '--out-dir', str(tmp_path)])
    with pytest.raises(ValueError, match='no video init step'):
        bench.with_backend([dict(type='SampleFrames')], 'pyav')
