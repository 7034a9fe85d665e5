import subprocess
import sys

import pytest

from data_helpers import REPO
from sparseformer_mm.models import SparseFormer, build_classifier
from tools.analysis_tools.complexity import complexity


def test_tiny_matches_the_papers_counts():
    stats = complexity(build_classifier(SparseFormer.arch_zoo['tiny'], 1000),
                       (3, 224, 224))
    assert stats['params'] / 1e6 == pytest.approx(31.52, abs=0.01)
    # reference figures: 2.07 G (paper's counter), 2.18 G (full count)
    assert stats['paper'] == pytest.approx(2.07, abs=0.01)
    assert stats['full'] == pytest.approx(2.18, abs=0.01)
    # compute barely grows with resolution: only the stem does
    big = complexity(build_classifier(SparseFormer.arch_zoo['tiny'], 1000),
                     (3, 448, 448))
    assert 1.0 < big['paper'] / stats['paper'] < 1.3


@pytest.mark.slow
def test_get_flops_on_a_video_config():
    cfg = 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'
    res = subprocess.run([sys.executable, 'tools/analysis_tools/get_flops.py',
                          cfg, '--shape', '4', '64', '64', '--per-module'],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'input shape (one view): (3, 4, 64, 64)' in res.stdout
    paper = float(res.stdout.split('GFLOPs (paper convention, mixing bmm '
                                   'skipped): ')[1].split()[0])
    full = float(res.stdout.split('GFLOPs (full count): ')[1].split()[0])
    assert 0 < paper < full
    assert 'backbone' in res.stdout  # the per-module table
    bad = subprocess.run([sys.executable, 'tools/analysis_tools/get_flops.py',
                          cfg, '--shape', '64', '64'], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and '--shape takes T H W' in bad.stderr
