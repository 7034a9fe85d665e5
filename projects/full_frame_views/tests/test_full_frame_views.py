"""projects/full_frame_views/full_frame_views.py end to end (tiny mode),
its doc check and its merge of several runs (the 16:9 clips it tests on:
tests/tools/data/test_wide_motion_clips.py)."""
import json
import os
import subprocess
import sys

import pytest

from data_helpers import REPO
from projects.full_frame_views import full_frame_views as exp

# one intra-op thread: tiny models, and a CPU shared with other jobs
ENV = dict(os.environ, OMP_NUM_THREADS='1')


@pytest.mark.slow
def test_experiment_quick(tmp_path):
    out = tmp_path / 'exp'
    doc = tmp_path / 'views.md'
    doc.write_text(f'# page\n\n{exp.TABLE_BEGIN}\nold table\n'
                   f'{exp.TABLE_END}\n\nafter\n')
    res = subprocess.run(
        [sys.executable, '-m', 'projects.full_frame_views.full_frame_views',
         '--out', str(out), '--quick', '--doc', str(doc)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    with open(out / 'results.json') as f:
        r = json.load(f)
    assert r['settings']['quick'] and r['settings']['demo_trained_here']
    assert r['settings']['seeds'] == [0]
    rows = {(x['model'], x['data'], x['protocol']): x for x in r['rows']}
    pairs = [(m, 'motion_wide') for m in exp.WIDE_MODELS] + [('demo',
                                                              'motion')]
    assert exp.WIDE_MODELS == ('crops', 'full', 'whole', 'grid')
    assert list(rows) == [(m, d, p) for m, d in pairs
                          for p in exp.PROTOCOLS]
    # 4 clips of 4 frames; the full frame keeps the 16:9 aspect at short
    # side 64: 64 x round(64 * 128 / 72) = 64 x 114; crops are 64 x 64
    for (model, data, protocol), x in rows.items():
        full = protocol == 'full-frame'
        width = round(64 * 128 / 72) if data == 'motion_wide' and full \
            else 64
        assert x['view'] == [4, 64, width], (model, data, protocol)
        assert x['views'] == (12 if protocol == 'three-crop' else 4)
        assert x['videos'] == 4 and 0 <= x['top1'] <= 100
        assert x['top1_per_seed'] == [x['top1']]
        assert x['seconds_per_video'] > 0
    for model, data in pairs:
        centre, three, full = (rows[(model, data, p)]['gflops_per_video']
                               for p in exp.PROTOCOLS)
        assert three == pytest.approx(3 * centre, rel=1e-3)
        if data == 'motion':  # square clips: the full frame is the crop
            assert full == pytest.approx(centre, rel=1e-3)
        else:  # a wider view costs more than one crop, less than three
            assert centre < full < three
    # 28 tokens cost more per view than 16, at every protocol
    for p in exp.PROTOCOLS:
        assert rows[('grid', 'motion_wide', p)]['gflops_per_video'] > \
            rows[('whole', 'motion_wide', p)]['gflops_per_video']
    acc = r['acceptance']
    crops = rows[('crops', 'motion_wide', 'three-crop')]
    for model in ('full', 'whole', 'grid'):
        full = rows[(model, 'motion_wide', 'full-frame')]
        v = acc['full_frame'][model]
        assert v['gflops_ratio'] == pytest.approx(
            full['gflops_per_video'] / crops['gflops_per_video'], abs=1e-3)
        assert v['passes'] == (full['top1'] >= crops['top1']
                               and v['gflops_ratio'] < 1)
    assert acc['passes'] == acc['full_frame'][acc['best']]['passes']
    # each model trained on what its config (or variant) says: squares,
    # frame-shaped crops, whole frames
    from mmengine.config import Config
    trained = {}
    for model in exp.WIDE_MODELS:
        work = out / 'work_dirs' / f'{model}_seed0'
        dumped = [p for p in work.glob('*.py')]
        assert len(dumped) == 1, dumped
        cfg = Config.fromfile(str(dumped[0]))
        steps = cfg.train_dataloader.dataset.pipeline
        trained[model] = [(t['type'], t.get('scale')) for t in steps
                          if t['type'] in ('RandomResizedCrop', 'Resize')]
        arch = cfg.model.backbone.arch
        assert (arch.num_tokens, arch.get('token_grid')) == (
            (28, (7, 4)) if model == 'grid' else (16, None))
    assert trained['crops'][1:] == [('RandomResizedCrop', None),
                                    ('Resize', (64, 64))]
    assert trained['full'][1:] == [('RandomResizedCrop', None),
                                   ('Resize', (114, 64))]
    assert trained['whole'] == trained['grid'] == [('Resize', (-1, 64))]
    table = (out / 'table.md').read_text().strip().splitlines()
    assert len(table) == 2 + len(rows)
    page = doc.read_text()
    assert '\n'.join(table) in page and 'old table' not in page
    assert page.startswith('# page') and page.endswith('after\n')


def test_experiment_refuses_a_doc_without_markers(tmp_path, capsys):
    doc = tmp_path / 'views.md'
    doc.write_text('# no markers\n')
    with pytest.raises(SystemExit):
        exp.parse_args(['--doc', str(doc)])
    err = capsys.readouterr().err
    assert str(doc) in err and exp.TABLE_BEGIN in err


def _run_results(path, seed, top1):
    """A results.json as one run of ``seed`` writes it (rows made up)."""
    per_run = []
    for model, seed_of in [(m, seed) for m in exp.WIDE_MODELS] + [
            ('demo', None)]:
        for protocol in exp.PROTOCOLS:
            views = 12 if protocol == 'three-crop' else 4
            per_run.append(dict(
                model=model, seed=seed_of, data='motion_wide',
                protocol=protocol, views=views, view=[4, 64, 64],
                top1=top1, gflops_per_video=0.1 * views,
                seconds_per_video=0.01 * views, videos=120))
    path.write_text(json.dumps(dict(
        settings=dict(seed=seed, seeds=[seed], epochs=6),
        checkpoints={f'crops_seed{seed}': 'x.pth'}, per_run=per_run,
        timing_s={'total': 1.0})))
    return str(path)


def test_merge_reports_runs_of_several_seeds_as_one(tmp_path):
    a = _run_results(tmp_path / 'a.json', 0, 80.0)
    b = _run_results(tmp_path / 'b.json', 1, 90.0)
    r = exp.main(['--merge', a, b, '--out', str(tmp_path / 'out')])
    assert r['settings']['seeds'] == [0, 1]
    rows = {(x['model'], x['protocol']): x for x in r['rows']}
    crops = rows[('crops', 'three-crop')]
    assert crops['top1'] == 85.0 and crops['top1_per_seed'] == [80.0, 90.0]
    # the demo model is tested by each run: its rows once, from the first
    demo = rows[('demo', 'three-crop')]
    assert demo['top1_per_seed'] == [80.0] and demo['seeds'] == [None]
    saved = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert saved['rows'] == r['rows']
    assert (tmp_path / 'out' / 'table.md').read_text().count('\n') == \
        2 + len(r['rows'])
    # the same seed twice is refused, naming it
    with pytest.raises(ValueError, match="'crops', 0"):
        exp.main(['--merge', a, a, '--out', str(tmp_path / 'again')])
