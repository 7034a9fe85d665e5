"""tools/experiments/full_frame_views.py end to end (tiny mode), and the
16:9 clips of tools/data/synthetic_videos.py it tests on."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_helpers import MOTION_CLASSES, REPO, import_tool, make_motion_clip

# one intra-op thread: tiny models, and a CPU shared with other jobs
ENV = dict(os.environ, OMP_NUM_THREADS='1')
SIGN = {'move_down': (0, 1), 'move_left': (-1, 0), 'move_right': (1, 0),
        'move_up': (0, -1)}


def test_default_clips_are_unchanged():
    """`make demo`'s clips: the first training clip of each class (seed 0)
    as the generator made them before frames could be wide."""
    golden = {
        'move_down': ([16, 5, 30, 19], [16, 44, 30, 58], 'cross', 1.253046,
                      [62, 143, 10]),
        'move_left': ([38, 14, 54, 30], [5, 14, 21, 30], 'cross', 1.076142,
                      [187, 201, 84]),
        'move_right': ([9, 33, 23, 47], [46, 33, 60, 47], 'circle',
                       1.195264, [76, 86, 237]),
        'move_up': ([17, 41, 33, 57], [17, 8, 33, 24], 'triangle', 1.060715,
                    [194, 135, 4]),
    }
    for label, cls in enumerate(MOTION_CLASSES):
        for size in (64, (64, 64)):  # a square given either way
            frames, boxes, info = make_motion_clip(
                np.random.default_rng([0, 0, label, 0]), cls, size)
            first, last, shape, speed, color = golden[cls]
            assert frames.shape == (32, 64, 64, 3)
            assert (boxes[0], boxes[-1], info['shape'], info['color']) == (
                first, last, shape, color)
            assert info['speed'] == pytest.approx(speed, abs=1e-6)


def test_wide_clips_put_the_object_anywhere():
    """128x72 clips: the object inside the frame in every frame, moving the
    class's way; over many clips its path spans the whole width, with
    speeds in one range for all directions."""
    centres, speeds = [], {'h': [], 'v': []}
    for i in range(40):
        cls = MOTION_CLASSES[i % 4]
        frames, boxes, info = make_motion_clip(np.random.default_rng(i), cls,
                                               (128, 72))
        assert frames.shape == (32, 72, 128, 3)
        b = np.array(boxes)
        assert b[:, [0, 1]].min() >= 0 and b[:, 2].max() <= 127 \
            and b[:, 3].max() <= 71
        sx, sy = SIGN[cls]
        step = np.diff(b[:, 0] if sx else b[:, 1]) * (sx or sy)
        assert (step >= 0).all() and step.sum() > 0
        centres.append((b[:, 0] + b[:, 2]).mean() / 2)
        speeds['h' if sx else 'v'].append(info['speed'])
    # a 72x72 centre crop (columns 28-99) misses some paths' centres
    assert min(centres) < 28 and max(centres) > 100
    # object and speed follow the short side (72): 1.125-2.25 px/frame
    for v in speeds['h'] + speeds['v']:
        assert 72 / 64 <= v <= 2 * 72 / 64


def test_size_option_parses_and_refuses_bad_sizes(tmp_path, capsys):
    videos = import_tool('data/synthetic_videos.py')
    assert videos.parse_size('64') == 64
    assert videos.parse_size('128x72') == (128, 72)
    for bad in ('12y', '0x5', '-3', 'x'):
        with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
            videos.parse_size(bad)
    tool = import_tool('data/make_synthetic_videos.py')
    with pytest.raises(SystemExit):
        tool.parse_args([str(tmp_path), '--size', '16:9'])
    assert "size '16:9'" in capsys.readouterr().err


def test_experiment_quick(tmp_path):
    out = tmp_path / 'exp'
    doc = tmp_path / 'views.md'
    exp = import_tool('experiments/full_frame_views.py')
    doc.write_text(f'# page\n\n{exp.TABLE_BEGIN}\nold table\n'
                   f'{exp.TABLE_END}\n\nafter\n')
    res = subprocess.run(
        [sys.executable, 'tools/experiments/full_frame_views.py', '--out',
         str(out), '--quick', '--doc', str(doc)],
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
    exp = import_tool('experiments/full_frame_views.py')
    with pytest.raises(SystemExit):
        exp.parse_args(['--doc', str(doc)])
    err = capsys.readouterr().err
    assert str(doc) in err and exp.TABLE_BEGIN in err


def _run_results(path, seed, top1):
    """A results.json as one run of ``seed`` writes it (rows made up)."""
    exp = import_tool('experiments/full_frame_views.py')
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
    exp = import_tool('experiments/full_frame_views.py')
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
