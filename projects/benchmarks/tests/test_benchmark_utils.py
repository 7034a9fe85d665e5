"""The measuring parts of projects/benchmarks/benchmark_utils.py: statistics,
memory accounting and the model zoo (no timing is asserted)."""
import pytest
import torch

from projects.benchmarks import benchmark_utils as bu


def test_summarise_known_answer():
    s = bu.summarise([0.5, 0.1, 0.2, 0.4, 0.3], batch=8)
    assert s['step_s'] == pytest.approx(0.3)
    assert s['throughput'] == pytest.approx(8 / 0.3)
    # quartiles of 0.1..0.5 (exclusive method): 0.15 and 0.45
    assert s['step_q1_s'] == pytest.approx(0.15)
    assert s['step_q3_s'] == pytest.approx(0.45)
    assert s['throughput_spread'] == pytest.approx(8 / 0.15 - 8 / 0.45)
    assert s['repeats'] == 5


def test_peak_memory_sees_a_transient_allocation():
    size = 256 * 2**20  # freed before the block ends: only the peak sees it
    with bu.PeakMemory(torch.device('cpu'), interval=0.001) as mem:
        x = torch.ones(size // 4)
        x.add_(1)
        del x
    assert mem.peak >= 0.9 * size
    with bu.PeakMemory(torch.device('cpu')) as idle:
        pass
    assert idle.peak < 0.5 * size


def test_training_memory_holds_gradients_and_adamw_state():
    model = bu.build('deit-t', 1, 32)
    params = sum(p.numel() for p in model.parameters()) * 4
    shape = bu.input_shape('image', 1, 32)
    r = bu.measure(model, shape, batch=2, mode='train', dtype='fp32',
                   device=torch.device('cpu'), repeats=2)
    # grads + exp_avg + exp_avg_sq = 3x the weights; allow for reuse
    assert r['peak_mem_mb'] * 2**20 >= 2 * params
    assert r['throughput'] > 0 and r['repeats'] == 2
    inf = bu.measure(model, shape, batch=2, mode='infer', dtype='bf16',
                     device=torch.device('cpu'), repeats=2)
    assert inf['peak_mem_mb'] * 2**20 < params  # no state, small batch


def test_zoo_and_config_names(tmp_path):
    assert bu.resolve_spec('videoswin-t').modality == 'video'
    assert bu.resolve_spec('configs/demo/sparseformer-nano_1xb32-6e_shapes.py'
                           ).modality == 'image'
    spec = bu.resolve_spec(
        'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')
    assert spec.modality == 'video' and spec.scope == 'mmaction'
    with pytest.raises(KeyError, match='sparseformer-t'):
        bu.resolve_spec('swin-tiny')
    with pytest.raises(ValueError, match='GPU'):
        bu.measure(bu.build('deit-t', 1, 32), [3, 32, 32], 1, 'infer',
                   'fp16', torch.device('cpu'))
    assert {'sparseformer-t', 'swin-t', 'videosparseformer-t', 'videoswin-t',
            'timesformer', 'mvitv2-s'} <= set(bu.ZOO)


def test_interleaved_timing_alternates_models():
    calls = []
    steps = {'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')}
    times = bu.time_interleaved(steps, torch.device('cpu'), warmup=2,
                                repeats=3)
    assert calls == ['a', 'a', 'b', 'b'] + ['a', 'b'] * 3
    assert {k: len(v) for k, v in times.items()} == {'a': 3, 'b': 3}
    assert all(t >= 0 for v in times.values() for t in v)
