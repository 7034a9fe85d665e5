"""tools/gpu_check.py (``make gpu-check``): without a GPU it says so and
runs the CPU mixed-precision trainings; its page keeps each section."""
import os
import subprocess
import sys

import pytest

from tools import gpu_check

REPO = gpu_check.REPO


def test_each_run_rewrites_only_its_section(tmp_path):
    doc = tmp_path / 'gpu_check.md'
    gpu_check.write_doc(str(doc), 'cpu', 'cpu table 1\n')
    text = doc.read_text()
    assert 'cpu table 1' in text and gpu_check.NOT_RUN in text
    gpu_check.write_doc(str(doc), 'gpu', 'gpu table\n')
    gpu_check.write_doc(str(doc), 'cpu', 'cpu table 2\n')
    text = doc.read_text()
    assert 'gpu table' in text and 'cpu table 2' in text
    assert 'cpu table 1' not in text and gpu_check.NOT_RUN not in text


def test_a_failing_check_is_a_row_and_the_rest_run():
    def broken():
        raise ValueError('no such thing')
    rows = gpu_check._guarded('broken', broken)
    rows += gpu_check._guarded('fine', lambda: [gpu_check._row('f', 1, True)])
    assert [r['ok'] for r in rows] == [False, True]
    assert 'ValueError: no such thing' in rows[0]['result']
    assert 'FAILED' in gpu_check.table(rows)


@pytest.mark.slow
def test_without_a_gpu_it_runs_the_cpu_amp_checks(tmp_path):
    doc = tmp_path / 'gpu_check.md'
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    res = subprocess.run(
        [sys.executable, '-m', 'tools.gpu_check', '--quick', '--work-dir',
         str(tmp_path / 'work'), '--doc', str(doc)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=900)
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert out.splitlines()[0].startswith('No CUDA GPU here: running the '
                                          'CPU mixed-precision checks')
    assert 'Device: CPU only' in out
    # --quick trains the demo in bf16 only (fp16 and bf16 trainings of
    # each config: tests/engine/test_cpu_amp.py)
    line = next(x for x in out.splitlines()
                if '_motion.py AMP bfloat16 |' in x)
    assert line.endswith('| yes |') and 'final loss scale 1024.0' in line
    assert '_motion.py AMP float16' not in out
    text = doc.read_text()
    assert gpu_check.NOT_RUN in text and '_motion.py AMP bfloat16' in text
