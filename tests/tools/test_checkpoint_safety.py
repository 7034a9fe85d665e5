"""Every way a checkpoint enters the project loads it weights-only: a
pickle whose ``__reduce__`` would create a marker file is refused with a
clear error, and the marker never appears.

The rule: every local file (``load_from``, ``--resume PATH``, ``init_cfg``
Pretrained, ``backbone.pretrained``, the converters, tools/test.py and
tools/infer.py) is weights-only; a resume of the run's own checkpoint too
(tests/test_compat.py: refused there as well, while mmengine's own
checkpoints resume, as every crash and kill test does).
"""
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_CFG = osp.join(REPO, 'configs/demo/sparseformer-nano_1xb32-6e_shapes.py')
VIDEO_CFG = osp.join(
    REPO, 'configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py')
NANO = dict(num_tokens=16, focus_dims=64, cortex_dims=128, cortex_depth=2,
            num_points=16)
REFUSED = 'Refused to unpickle'


@pytest.fixture
def evil(tmp_path):
    """A checkpoint with real weights plus an object whose unpickling would
    create ``tmp_path/pwned``. Returns ``(checkpoint path, marker path)``."""
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(IMAGE_CFG).model)
    path = tmp_path / 'downloaded.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {},
                'payload': Payload()}, path)
    return str(path), marker


def _run(args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=REPO, text=True,
                          capture_output=True, timeout=300,
                          env={'CUDA_VISIBLE_DEVICES': '',
                               'PATH': '/usr/bin:/bin',
                               'HOME': str(tmp_path)})


def _assert_refused(res, marker):
    assert res.returncode != 0, res.stdout[-2000:]
    assert REFUSED in res.stderr, res.stderr[-3000:]
    assert 'weights-only' in res.stderr
    assert not marker.exists()


@pytest.fixture(scope='module')
def shapes_options(tmp_path_factory):
    """``--cfg-options`` pointing the image demo config at a tiny generated
    dataset (the tools build their loaders before loading a checkpoint)."""
    from data_helpers import make_shape_dataset
    root = str(tmp_path_factory.mktemp('shapes'))
    make_shape_dataset(root, num_train=1, num_val=1, size=32)
    return ['--cfg-options'] + [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')]


@pytest.mark.slow
def test_tools_test_py(evil, tmp_path, shapes_options):
    ckpt, marker = evil
    _assert_refused(_run(['tools/test.py', IMAGE_CFG, ckpt, '--work-dir',
                          str(tmp_path / 'work')] + shapes_options,
                         tmp_path), marker)


@pytest.mark.slow
def test_tools_train_py_foreign_resume(evil, tmp_path, shapes_options):
    # --resume PATH goes through Runner.resume (load_from through
    # Runner.load_checkpoint: tools/test.py above).
    ckpt, marker = evil
    _assert_refused(_run(['tools/train.py', IMAGE_CFG, '--work-dir',
                          str(tmp_path / 'work'), '--resume', ckpt]
                         + shapes_options, tmp_path), marker)


@pytest.mark.slow
def test_tools_infer_py(evil, tmp_path):
    ckpt, marker = evil
    video = tmp_path / 'any.mp4'
    video.write_bytes(b'')  # never reached: the model is loaded first
    _assert_refused(_run(['tools/infer.py', VIDEO_CFG, ckpt, str(video)],
                         tmp_path), marker)


@pytest.mark.parametrize('tool, extra', [
    ('sparseformer_to_mm', []), ('inflate_to_video', []),
    ('vit_to_sparseformer', ['--arch', 'btsp-augreg-base'])])
def test_model_converters(evil, tmp_path, monkeypatch, tool, extra):
    ckpt, marker = evil
    script = osp.join(REPO, 'tools', 'model_converters', f'{tool}.py')
    monkeypatch.setattr(sys, 'argv',
                        [script, ckpt, str(tmp_path / 'out.pth'), *extra])
    # as `python script` does: its folder first (it imports its siblings)
    monkeypatch.syspath_prepend(osp.dirname(script))
    with pytest.raises(SystemExit, match=REFUSED):  # error: ... on stderr
        runpy.run_path(script, run_name='__main__')
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


def test_init_cfg_pretrained(evil):
    ckpt, marker = evil
    from sparseformer_mm.models import SparseFormer
    model = SparseFormer(arch=NANO, num_heads=4, init_cfg=dict(
        type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
    with pytest.raises(RuntimeError, match=REFUSED):
        model.init_weights()
    assert not marker.exists()


def test_video_backbone_pretrained(evil):
    ckpt, marker = evil
    from sparseformer_mm.models import VideoSparseFormer
    model = VideoSparseFormer(arch=NANO, num_heads=4, replicates=2,
                              pretrained=ckpt)
    with pytest.raises(RuntimeError, match=REFUSED):
        model.init_weights()
    assert not marker.exists()


def _hammer(path, blobs, writer, errors):
    # Plain bytes (serialised by the parent): a forked child must not run
    # torch ops after the parent's thread pools started.
    from sparseformer_mm.checkpoint_safety import atomic_write
    for blob in blobs:
        try:
            atomic_write(path, lambda f: f.write(blob))
        except Exception as e:  # counted: a failed save is a bug too
            errors.put(repr(e))


def test_concurrent_saves_of_one_name_install_whole_files(tmp_path):
    # Several processes save the same checkpoint name at once (two runs in
    # one work dir; ranks sharing a folder). Each save has its own
    # temporary file: none fails, and a reader only ever sees whole files.
    import io
    import multiprocessing as mp

    def blob(value):
        buf = io.BytesIO()
        torch.save({'w': torch.full((64 * 1024,), float(value))}, buf)
        return buf.getvalue()

    ctx = mp.get_context('fork')
    path, errors = str(tmp_path / 'epoch_1.pth'), ctx.Queue()
    writers = [ctx.Process(target=_hammer, args=(
        path, [blob(w * 1000 + i) for i in range(40)], w, errors))
        for w in range(4)]
    for p in writers:
        p.start()
    reads = 0
    while any(p.is_alive() for p in writers) or reads == 0:
        if osp.exists(path):
            w = torch.load(path, weights_only=True)['w']
            assert w.numel() == 64 * 1024 and bool((w == w[0]).all())
            reads += 1
    for p in writers:
        p.join()
        assert p.exitcode == 0
    assert errors.empty(), errors.get()
    # no temporary file is left behind
    assert os.listdir(tmp_path) == ['epoch_1.pth']
