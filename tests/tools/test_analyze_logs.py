"""tools/analysis_tools/analyze_logs.py on mmengine-style JSON-lines logs."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = 'tools/analysis_tools/analyze_logs.py'


def _write_log(path, lr0, acc_key='accuracy/top1'):
    """Two epochs of 4 iterations logged every 2, a validation after each;
    the layout mmengine's LocalVisBackend writes to vis_data/*.json."""
    lines, it = [], 0
    for epoch in (1, 2):
        for k in range(2):
            it += 2
            lines.append(dict(lr=lr0 / it, loss=2.0 / it, time=0.1 * epoch
                              + (1.0 if k == 0 and epoch == 1 else 0.0),
                              data_time=0.01, epoch=epoch, iter=it, step=it))
        lines.append({acc_key: 40.0 * epoch, 'data_time': 0.02, 'time': 0.3,
                      'step': epoch})
    path.write_text('\n'.join(json.dumps(r) for r in lines) + '\n')
    return str(path)


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_plot_curve_overlays_logs(tmp_path):
    a = _write_log(tmp_path / 'a.json', 1e-3)
    b = _write_log(tmp_path / 'b.json', 5e-4)
    out = tmp_path / 'plots' / 'curves.png'
    res = _run('plot_curve', a, b, '--keys', 'loss', 'lr', 'accuracy/top1',
               '--legend', 'run_a', 'run_b', '--out', out)
    assert res.returncode == 0, res.stderr
    assert f'wrote {out}' in res.stdout
    img = Image.open(out)
    img.verify()
    img = np.asarray(Image.open(out).convert('RGB'))
    # three stacked subplots, 7 x 2.8 inches each at 100 dpi
    assert img.shape == (840, 700, 3)
    # two lines in matplotlib's first two colours (C0 blue, C1 orange)
    assert (np.abs(img.astype(int) - [31, 119, 180]).sum(-1) < 30).sum() > 50
    assert (np.abs(img.astype(int) - [255, 127, 14]).sum(-1) < 30).sum() > 50


def test_plot_curve_names_the_keys_present(tmp_path):
    log = _write_log(tmp_path / 'video.json', 1e-3, acc_key='acc/top1')
    res = _run('plot_curve', log, '--keys', 'loss', 'accuracy/top1',
               '--out', tmp_path / 'x.png')
    assert res.returncode != 0
    assert "key(s) ['accuracy/top1'] not in log" in res.stderr
    assert 'keys present: acc/top1, data_time, loss, lr, time' in res.stderr
    assert not (tmp_path / 'x.png').exists()

    (tmp_path / 'bad.json').write_text('{"loss": 1}\nnot json\n')
    res = _run('plot_curve', tmp_path / 'bad.json')
    assert res.returncode != 0 and 'bad.json:2 is not JSON' in res.stderr
    out = tmp_path / 'y.png'
    res = _run('plot_curve', log, log, '--legend', 'only_one', '--out', out)
    assert res.returncode != 0 and '1 --legend names for 2 logs' in res.stderr
    res = _run('plot_curve', log, log, '--out', out)
    assert res.returncode != 0 and 'distinct --legend names' in res.stderr


def test_cal_train_time(tmp_path):
    log = _write_log(tmp_path / 'a.json', 1e-3)
    res = _run('cal_train_time', log)
    assert res.returncode == 0, res.stderr
    # the first window of each epoch is dropped: epoch 1 -> 0.1, epoch 2 -> 0.2
    assert 'slowest epoch 2: 0.2000 s/iter' in res.stdout
    assert 'fastest epoch 1: 0.1000 s/iter' in res.stdout
    assert 'average iter time: 0.1500 s/iter' in res.stdout
    res = _run('cal_train_time', log, '--include-outliers')
    assert 'slowest epoch 1: 0.6000 s/iter' in res.stdout  # (1.1 + 0.1) / 2
