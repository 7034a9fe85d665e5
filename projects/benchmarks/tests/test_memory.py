"""projects/benchmarks/memory.py: the line arithmetic on known answers, and
its quick mode end to end on a nano model (the peak grows with the batch,
the line fitted on batches 1 and 2 predicts batch 3, the doc's table says
what the JSON holds)."""
import json

import pytest

from projects.benchmarks import memory

GiB = 2**30


def test_line_arithmetic_known_answers():
    assert memory.fit_line([1, 2], [3.0, 5.0]) == pytest.approx((1.0, 2.0))
    # least squares through three points: y = 1 + 2x exactly off by +-0.5
    a, b = memory.fit_line([1, 2, 3], [3.5, 4.5, 7.5])
    assert b == pytest.approx(2.0) and a == pytest.approx(1.0 + 1 / 6)
    with pytest.raises(ValueError, match='two distinct'):
        memory.fit_line([2, 2], [1.0, 1.0])
    assert memory.largest_batch((1.0, 2.0), 10.0) == 4  # 1 + 2*4 = 9
    assert memory.largest_batch((1.0, 2.0), 2.5) == 0
    # AMP: slope halved, half-precision weight copies added; DDP buckets in
    # training; then the margin and the context
    params = 4.0 * GiB
    m, ctx = 1 + memory.GPU_MARGIN, memory.CUDA_CONTEXT
    a, b = memory.gpu_line((10 * GiB, 2 * GiB), params, 'train', amp=True)
    assert a == pytest.approx((10 + 2 + 4) * GiB * m + ctx)
    assert b == pytest.approx(1 * GiB * m)
    a, b = memory.gpu_line((10 * GiB, 2 * GiB), params, 'infer', amp=False)
    assert (a, b) == pytest.approx((10 * GiB * m + ctx, 2 * GiB * m))


def test_amp_ratio_from_a_bf16_measurement():
    def res(label, dtype, slope, cp=False):
        return dict(label=label, with_cp=cp, dtype=dtype,
                    lines=dict(train=dict(slope=slope)))
    results = [res('T', 'fp32', 4.0), res('T', 'bf16', 3.0),
               res('S', 'fp32', 8.0), res('S', 'bf16', 4.0),
               res('B', 'bf16', 9.0)]  # no fp32 twin: not a ratio
    assert memory.amp_ratios(results) == {'train': (0.75, 'T')}
    assert memory.amp_ratios(results[2:]) == {'train': (0.5, 'S')}


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('memory')
    results = memory.main(['--quick', '--results', str(tmp / 'r.json'),
                           '--doc', str(tmp / 'memory.md')])
    return results, tmp


@pytest.mark.slow
def test_quick_mode_peaks_grow_and_the_line_predicts(quick):
    results, tmp = quick
    (res, ) = results
    assert json.loads((tmp / 'r.json').read_text()) == results
    for mode in ('infer', 'train'):
        totals = [r['total'] for r in res['rows'] if r['mode'] == mode]
        assert [r['batch'] for r in res['rows'] if r['mode'] == mode] == \
            [1, 2, 3]
        assert totals[0] < totals[1] < totals[2], (mode, totals)
        (held, ) = res['lines'][mode]['held_out']
        assert held['batch'] == 3
        assert held['predicted'] == pytest.approx(held['measured'], rel=0.3)
    train = {r['batch']: r['total'] for r in res['rows']
             if r['mode'] == 'train'}
    infer = {r['batch']: r['total'] for r in res['rows']
             if r['mode'] == 'infer'}
    # a training step holds gradients and two AdamW moments on top
    params = 4 * res['params']
    assert all(train[b] - infer[b] >= 2 * params for b in train)


@pytest.mark.slow
def test_quick_mode_doc_table(quick):
    results, tmp = quick
    (res, ) = results
    doc = (tmp / 'memory.md').read_text()
    assert 'No GPU was at hand' in doc
    for mode in ('train', 'infer'):
        rows = sorted((r['batch'], r['total']) for r in res['rows']
                      if r['mode'] == mode)
        # the line through batches 1 and 2, computed here
        (b1, t1), (b2, t2) = rows[:2]
        slope = (t2 - t1) / (b2 - b1)
        at8 = t1 + slope * (8 - b1)
        cells = ' | '.join(f'{t / GiB:.2f}' for _, t in rows)
        line = [ln for ln in doc.splitlines()
                if ln.startswith('| nano | 8 x 160²') and f'| {mode} |' in ln]
        assert len(line) == 1, doc
        assert cells in line[0] and f'| {at8 / GiB:.2f} |' in line[0]
        gpu = [ln for ln in doc.splitlines()
               if ln.startswith(f'| nano | no | {mode} |')]
        assert len(gpu) == 1
