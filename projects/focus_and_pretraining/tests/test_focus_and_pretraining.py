"""focus_and_pretraining.py runs end to end (tiny mode), focus_metric.py
writes a parseable json with the experiment's numbers, and the experiment's
``shapes_small`` objects are the motion clips' size."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from data_helpers import REPO, motion_object_radius
from projects.focus_and_pretraining import focus_and_pretraining
# one intra-op thread: tiny models, and a CPU shared with other jobs
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def _check_summary(s):
    assert 0 < s['chance'] < 1
    assert len(s['passes']) == 5  # 4 focusing repeats + cortex block 0
    for p in s['passes'] + [s['last_pass'], s['mean_over_passes']]:
        assert 0 <= p['points_in'] <= 1 and 0 <= p['roi_in'] <= 1
        assert abs(p['points_lift'] - p['points_in'] / s['chance']) < 1e-9


def test_small_shapes_are_the_motion_objects_size():
    assert focus_and_pretraining.SMALL_RADIUS == motion_object_radius(64)


@pytest.mark.slow
def test_experiment_quick(tmp_path):
    out = tmp_path / 'exp'
    res = subprocess.run(
        [sys.executable, '-m',
         'projects.focus_and_pretraining.focus_and_pretraining',
         '--out', str(out), '--quick'],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out / 'results.json') as f:
        r = json.load(f)
    assert set(r) >= {'settings', 'image', 'video', 'acceptance',
                      'timing_s', 'pictures'}
    assert r['settings']['quick'] is True
    assert set(r['video']) == {'pretrained', 'scratch'}
    assert r['image_stages'] == ['image', 'image_small', 'image_tiny']
    stages = [r[key] for key in r['image_stages']]
    runs = stages + [r['video']['pretrained'], r['video']['scratch']]
    for run in runs:
        assert [e for e, _ in run['val_acc']] == [1]  # 1 epoch, val each
        assert 0 <= run['final_acc'] <= 100
        _check_summary(run['focus_init'])
        _check_summary(run['focus_trained'])
        assert osp.isfile(run['checkpoint'])
    # the image stages chain: shapes -> shapes_small -> shapes_tiny -> video
    # (inflated); each later stage is also measured where it starts
    for prev, run in zip(stages, stages[1:]):
        _check_summary(run['focus_start'])
        assert run['load_from'] == prev['checkpoint']
    assert 'load_from' not in stages[0]
    assert r['video']['pretrained']['pretrained'] == stages[-1]['checkpoint']
    assert r['video']['scratch']['pretrained'] is None
    # each stage's objects are smaller: a smaller share of the frame
    chance = [run['focus_init']['chance'] for run in stages]
    assert chance[0] > chance[1] > chance[2], chance
    for key in r['image_stages'] + ['video_pretrained', 'video_scratch']:
        acc = r['acceptance'][key]
        assert acc['passes'] == (acc['trained'] >= r['acceptance']['bar'])
    # each video run with 2 seeds (--quick); the first is the full record,
    # and the video focus check is the mean of the seeds' own measurements
    for name in ('pretrained', 'scratch'):
        video, acc = r['video'][name], r['acceptance'][f'video_{name}']
        assert [s['seed'] for s in video['seeds']] == [0, 1]
        assert video['seeds'][0]['checkpoint'] == video['checkpoint']
        assert osp.isfile(video['seeds'][1]['checkpoint'])
        assert video['seeds'][1]['checkpoint'] != video['checkpoint']
        assert video['seeds'][0]['lift_trained'] == pytest.approx(
            video['focus_trained']['last_pass']['points_lift'], abs=1e-3)
        assert acc['per_seed'] == [s['lift_trained'] for s in video['seeds']]
        assert acc['trained'] == pytest.approx(
            sum(acc['per_seed']) / 2, abs=1e-3)
    assert (out / 'val_accuracy.png').stat().st_size > 1000

    # the analysis tool on the experiment's own video checkpoint and data
    video_ckpt = r['video']['scratch']['checkpoint']
    motion = osp.join(r['settings']['data_root'], 'motion')
    js = tmp_path / 'focus.json'
    res = subprocess.run(
        [sys.executable, '-m', 'projects.focus_and_pretraining.focus_metric',
         r['settings']['video_config'], video_ckpt, '--out', str(js),
         '--cfg-options',
         f'val_dataloader.dataset.ann_file={motion}/'
         'kinetics400_val_list_videos.txt',
         f'val_dataloader.dataset.data_prefix.video={motion}/videos_val'],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'chance' in res.stdout and 'final RoIs' in res.stdout
    with open(js) as f:
        tool = json.load(f)
    _check_summary(tool)
    # same checkpoint, data and pipeline: the numbers of the experiment
    assert abs(tool['last_pass']['points_in'] - r['video']['scratch'][
        'focus_trained']['last_pass']['points_in']) < 1e-9
