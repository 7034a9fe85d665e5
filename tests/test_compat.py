"""Each upstream fix: the failure without it and the fix with it.

Fixes are applied on ``import sparseformer_mm``; the "without" cases run in
a fresh interpreter that does not import it.
"""
import contextlib
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from sparseformer_mm import checkpoint_safety, compat

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_py(code, cwd=REPO):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_mmaction_models_import_needs_drn_fix():
    without = run_py('import mmaction.models')
    assert without.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in without.stderr
    with_fix = run_py('''
        import sparseformer_mm, mmaction.models
        from mmaction.registry import MODELS
        assert MODELS.get('Recognizer3D') is not None
        print('ok')''')
    assert with_fix.returncode == 0, with_fix.stderr
    assert 'ok' in with_fix.stdout


MMACTION_BASE = '''
    import sys, tempfile, os
    sys.modules['pkg_resources'] = None   # setuptools >= 82: no pkg_resources
    {fix}
    from mmengine.config import Config
    d = tempfile.mkdtemp()
    with open(os.path.join(d, 'cfg.py'), 'w') as f:
        f.write("_base_ = ['mmaction::_base_/default_runtime.py']\\n")
    cfg = Config.fromfile(os.path.join(d, 'cfg.py'))
    print('scope', cfg.default_scope)
'''


@pytest.mark.slow
def test_mmaction_config_base_without_pkg_resources():
    without = run_py(MMACTION_BASE.format(fix=''))
    assert without.returncode != 0
    assert 'pkg_resources' in without.stderr
    with_fix = run_py(MMACTION_BASE.format(fix='import sparseformer_mm'))
    assert with_fix.returncode == 0, with_fix.stderr
    assert 'scope mmaction' in with_fix.stdout


def test_installed_path_lookups():
    import mmaction
    assert compat.is_installed('mmaction2')
    assert not compat.is_installed('surely_not_a_package_xyz')
    assert compat.get_installed_path('mmaction2') == osp.dirname(
        mmaction.__file__)


def _runner_style_checkpoint(path):
    """What mmengine's Runner saves: tensors plus HistoryBuffer/numpy."""
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', 3)
    torch.save({'meta': {'epoch': 1, 'seed': np.int64(3),
                         'hist': np.arange(3.0)},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': hub.state_dict()}, path)


def test_plain_torch_load_fails_on_runner_checkpoints(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    _runner_style_checkpoint(path)
    from mmengine.runner import checkpoint as ckpt_mod
    # mmengine's own loader (kept untouched in its module) fails on torch>=2.6
    with pytest.raises(Exception, match='weights_only|Weights only'):
        ckpt_mod.load_from_local(str(path), 'cpu')
    # ours loads it weights-only, because these types are inert data
    loaded = compat.load_from_local(str(path), 'cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_code_in_a_checkpoint_never_runs(tmp_path):
    """No checkpoint is unpickled fully: neither one from elsewhere nor one
    in the run's own work dir, resumed by the real Runner."""
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    path = tmp_path / 'downloaded.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': Payload()}, path)
    from mmengine.runner.checkpoint import CheckpointLoader
    with pytest.raises(RuntimeError, match='Refused to unpickle'):
        CheckpointLoader.load_checkpoint(str(path), 'cpu')
    assert not marker.exists()

    from mmengine.runner import Runner

    from toy_models import Points, TinyRegressor
    work = tmp_path / 'work'

    def runner(max_iters):
        return Runner(
            model=TinyRegressor(), work_dir=str(work),
            train_dataloader=dict(dataset=Points(), batch_size=2,
                                  sampler=dict(type='DefaultSampler'),
                                  collate_fn=dict(type='default_collate')),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            default_hooks=dict(checkpoint=dict(
                type='CheckpointHook', interval=2, by_epoch=False)),
            resume=True, log_level='WARNING',
            experiment_name=f'payload_{max_iters}')

    runner(2).train()
    ckpt = torch.load(work / 'iter_2.pth', weights_only=False)
    runner(4).train()  # a resume of the Runner's own checkpoint loads
    ckpt['x'] = Payload()
    torch.save(ckpt, work / 'iter_4.pth')
    with pytest.raises(RuntimeError, match='Refused to unpickle'):
        runner(6).train()
    assert not marker.exists()


LOAD_API = '''
    import hashlib, inspect, json, sys
    {pre}
    import torch
    import mmengine.runner
    import mmengine.runner.checkpoint as ckpt
    import mmengine.runner.runner as runner
    import mmengine.model.weight_init as weight_init

    def ident(obj):
        f = getattr(obj, '__func__', obj)
        code = getattr(f, '__code__', None)
        return [getattr(f, '__module__', None),
                getattr(f, '__qualname__', type(f).__name__),
                hashlib.sha1(code.co_code).hexdigest() if code else None]

    out = dict(torch_load=ident(torch.load))
    for mod in (ckpt, runner, weight_init, mmengine.runner,
                torch.serialization):
        for name, obj in vars(mod).items():
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if isinstance(v, (staticmethod, classmethod)) or \\
                            inspect.isfunction(v):
                        out[f'{{mod.__name__}}.{{name}}.{{k}}'] = ident(v)
            elif callable(obj):
                out[f'{{mod.__name__}}.{{name}}'] = ident(obj)
    for prefix, fn in ckpt.CheckpointLoader._schemes.items():
        out[f'CheckpointLoader._schemes[{{prefix!r}}]'] = ident(fn)
    print(json.dumps(out))
'''


@pytest.mark.slow
def test_mmengine_loading_is_unchanged_apart_from_the_listed_fix():
    """``import sparseformer_mm`` leaves mmengine's checkpoint loading
    (``runner/checkpoint.py``, every ``Runner`` method, ``Runner.resume``
    included, the ``Pretrained`` initialiser, ``torch.load``) as it is,
    apart from fix 3: the loader of local paths is weights-only."""
    import json
    snaps = []
    for pre in ('import mmpretrain, mmaction', 'import sparseformer_mm'):
        res = run_py(LOAD_API.format(pre=pre))
        assert res.returncode == 0, res.stderr[-3000:]
        snaps.append(json.loads(res.stdout.splitlines()[-1]))
    without, with_fix = snaps
    assert 'mmengine.runner.runner.Runner.resume' in without
    changed = {k: (with_fix.get(k) or [None])[:2]
               for k in set(without) | set(with_fix)
               if without.get(k) != with_fix.get(k)}
    assert changed == {"CheckpointLoader._schemes['']": [
        'sparseformer_mm.compat', 'load_from_local']}, changed


# --------------------------------------------------------------------------
# 4. Atomic checkpoint writes
# --------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'w': torch.ones(3)}, path)

    def fail(f):
        f.write(b'half a checkpoint')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        checkpoint_safety.atomic_write(str(path), fail)
    assert torch.equal(torch.load(path)['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


SAVE_API = '''
import json, sys
import mmengine.fileio, mmengine.hooks, mmengine.runner, mmpretrain, mmaction


def snapshot():
    out = {}
    for name, mod in sorted(sys.modules.items()):
        if not name.startswith('mmengine') or mod is None:
            continue
        # ``open`` must stay the builtin: no mmengine module gets its own
        out[name + '.open'] = 'open' in vars(mod)
        fn = vars(mod).get('save_checkpoint')
        if callable(fn):
            out[name + '.save_checkpoint'] = [fn.__module__, id(fn)]
    from mmengine.fileio import LocalBackend
    for k in ('put', 'put_text'):
        out['LocalBackend.' + k] = id(getattr(LocalBackend, k))
    out['CheckpointHook._save_checkpoint_with_step'] = id(
        mmengine.hooks.CheckpointHook._save_checkpoint_with_step)
    return out


before = snapshot()
import sparseformer_mm  # noqa
after = snapshot()
print(json.dumps([before, after]))
'''


def test_mmengine_saving_is_unchanged():
    """``import sparseformer_mm`` leaves mmengine's checkpoint writing as
    it is: every module's ``save_checkpoint`` is the original, no mmengine
    module has an ``open`` of its own, ``LocalBackend`` writes as before.
    Atomic saves are the ``atomic_local`` backend a config names."""
    import json
    res = run_py(SAVE_API)
    assert res.returncode == 0, res.stderr[-3000:]
    before, after = json.loads(res.stdout.splitlines()[-1])
    assert before['mmengine.runner.runner.save_checkpoint'][0] == \
        'mmengine.runner.checkpoint'
    changed = {k for k in before if before[k] != after[k]}
    assert not changed, changed
    assert not [k for k, v in after.items() if k.endswith('.open') and v]
    assert not [k for k, v in after.items() if k.endswith('save_checkpoint')
                and not v[0].startswith('mmengine.')]


def test_atomic_local_backend_writes_whole_files(tmp_path):
    from mmengine.fileio import get_file_backend
    from mmengine.runner import save_checkpoint
    args = dict(backend='atomic_local')
    backend = get_file_backend(str(tmp_path), backend_args=args)
    assert isinstance(backend, checkpoint_safety.AtomicLocalBackend)
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.ones(2)}}, str(path),
                    backend_args=args)
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.ones(2))
    pointer = tmp_path / 'last_checkpoint'
    backend.put_text(str(path), str(pointer))
    real_fsync = os.fsync

    def killed(fd):  # the write of the new pointer is cut short
        raise KeyboardInterrupt
    os.fsync = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            backend.put_text('/somewhere/else.pth', str(pointer))
    finally:
        os.fsync = real_fsync
    assert pointer.read_text() == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_1.pth', 'last_checkpoint']


SAVE_FOREVER = '''
    import os, sys, torch
    import sparseformer_mm
    from mmengine.fileio import get_file_backend
    from mmengine.runner import save_checkpoint
    d = sys.argv[1]
    args = dict(backend='atomic_local')  # the runtime configs' backend_args
    backend = get_file_backend(d, backend_args=args)
    big = torch.randn(32 * 2**20 // 4)  # 32 MB
    for i in range(1000):
        path = os.path.join(d, f'epoch_{i}.pth')
        save_checkpoint({'meta': {'epoch': i}, 'state_dict': {'w': big}},
                        path, backend_args=args)
        backend.put_text(path, os.path.join(d, 'last_checkpoint'))
        if i >= 2:
            os.remove(os.path.join(d, f'epoch_{i - 2}.pth'))
'''


@pytest.mark.slow
def test_sigkill_while_saving_leaves_whole_checkpoints(tmp_path):
    import signal
    import time
    proc = subprocess.Popen(
        [sys.executable, '-c', textwrap.dedent(SAVE_FOREVER), str(tmp_path)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill as soon as a checkpoint after the first is being written
        # (any of them: on a fast disk the poll may miss epoch 1's window).
        deadline = time.time() + 120

        def writing():
            # temporary names are .epoch_N.pth.HOST.PID.RAND.tmp
            for p in tmp_path.glob('.epoch_*.pth.*tmp'):
                with contextlib.suppress(OSError):  # renamed meanwhile
                    if not p.name.startswith('.epoch_0.pth.') \
                            and p.stat().st_size:
                        return True
            return False

        while not writing():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, 'no checkpoint write started'
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The kill may land in the write, the fsync or just after the rename;
    # whatever it hit, every checkpoint file is whole and the pointer names
    # one of them.
    pointer = (tmp_path / 'last_checkpoint').read_text()
    final = sorted(tmp_path.glob('epoch_*.pth'))
    assert final, sorted(p.name for p in tmp_path.iterdir())
    assert pointer in map(str, final)
    for path in final:
        ckpt = torch.load(path, weights_only=True)
        assert ckpt['state_dict']['w'].numel() == 32 * 2**20 // 4
