"""The per-family README tables are where params and GFLOPs are written
(the front README and docs/models.md link to them). Every row must parse;
the rows of the tiny image and video configs (the front page's models; a
count of the larger ones takes minutes on 2 cores) are recounted from their
configs with the counter of tools/analysis_tools."""
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from tools.analysis_tools.complexity import complexity, default_shape

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAMILIES = ('configs/sparseformer/README.md',
            'configs/videosparseformer/README.md')


def _cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def _rows():
    """``(readme, config path, params M, [GFLOPs...], HxW or None)`` of
    every table row that links a config and states params."""
    rows = []
    for readme in FAMILIES:
        header = None
        for line in open(osp.join(REPO, readme), encoding='utf-8'):
            if not line.startswith('|'):
                header = None
                continue
            cells = _cells(line)
            if header is None:
                header = cells
                continue
            link = re.search(r'\[config\]\(([^)]+\.py)\)', line)
            if not link or not any('params' in h for h in header):
                continue
            params = float(re.match(r'([\d.]+) M', cells[next(
                i for i, h in enumerate(header) if 'params' in h)])[1])
            flops, shape = [], None
            for head, cell in zip(header, cells):
                if 'GFLOPs' in head:
                    flops += [float(v) for v in
                              re.findall(r'(?<![\dx])\d+\.\d+', cell)]
                    size = re.search(r'\((\d+)x(\d+)\)', cell)
                    shape = shape or (size and size.groups())
            rows.append((readme, osp.join(osp.dirname(readme), link[1]),
                         params, flops, shape))
    return rows


ROWS = _rows()
RECOUNTED = ('sparseformer-tiny_8xb128_in1k.py',
             'videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py')


def test_the_tables_are_found():
    configs = {r[1] for r in ROWS}
    assert 'configs/sparseformer/sparseformer-tiny_8xb128_in1k.py' in configs
    assert ('configs/videosparseformer/videosparseformer-tiny_in1k-pre_8xb8-'
            '32x2x1-30e_kinetics400-rgb.py') in configs
    assert all(r[3] for r in ROWS), ROWS


@pytest.mark.slow
@pytest.mark.parametrize('row', [r for r in ROWS if osp.basename(r[1])
                                 in RECOUNTED], ids=lambda r: osp.basename(r[1]))
def test_readme_numbers_are_the_counted_ones(row):
    readme, path, params, flops, size = row
    cfg = Config.fromfile(osp.join(REPO, path))
    if cfg.model.get('backbone', {}).get('pretrained'):
        cfg.model.backbone.pretrained = None
    shape = default_shape(cfg)
    if size:
        shape[-2:] = [int(s) for s in size]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    counted = complexity(model, shape)
    where = f'{readme}, row of {osp.basename(path)}'
    assert round(counted['params'] / 1e6, 2) == params, (where, counted)
    # one GFLOPs cell: the full count (the two conventions agree there);
    # two: paper counter, then full count
    expected = [counted['full']] if len(flops) == 1 else [
        counted['paper'], counted['full']]
    assert [round(v, 2) for v in expected] == flops, (where, counted)
