"""Test-only hooks that break a training process on request.

Imported by the configs the crash tests write (``custom_imports``).
:class:`CrashHook` does nothing unless ``CRASH_AT_ITER`` is set:

* ``CRASH_AT_ITER``: the global iteration (1-based) after which to crash.
* ``CRASH_RANK`` (default 0): only this rank crashes.
* ``CRASH_MODE``: ``kill`` (default) sends SIGKILL to this process;
  ``wait`` writes ``CRASH_PID_FILE`` (our pid) and sleeps, so that the test
  kills it from outside at a moment it knows.
* Only the first attempt of an elastic job crashes
  (``TORCHELASTIC_RESTART_COUNT`` is 0 or unset).

:class:`NaNLossHook` makes the loss of one rank NaN at one iteration
(``NAN_AT_ITER``, 1-based; ``NAN_RANK``, default 0).

Kills inside a checkpoint save: ``CRASH_IN_SAVE`` names the point and
``CRASH_SAVE_EPOCH`` the epoch whose save (``epoch_N.pth``) is hit:

* ``before_save``: in ``before_save_checkpoint`` (nothing written yet);
* ``before_ckpt_install``: the temporary file is whole, not yet renamed;
* ``after_ckpt``: ``epoch_N.pth`` installed, pointer not yet written;
* ``after_pointer``: ``last_checkpoint`` names it, old files not removed;
* ``after_remove``: after the first removal of an old checkpoint.

The last four wrap ``os.replace`` / ``os.remove`` (what the atomic save and
mmengine's file backend call), so they see the real order of the writes.
"""
import os
import os.path as osp
import signal
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from sparseformer_mm.utils import unwrap_model


def _armed(runner, prefix: str) -> bool:
    """Whether ``{prefix}_AT_ITER`` is this iteration (1-based) and
    ``{prefix}_RANK`` (default 0) is this rank."""
    at = os.environ.get(f'{prefix}_AT_ITER')
    return at is not None and runner.iter + 1 == int(at) and \
        get_rank() == int(os.environ.get(f'{prefix}_RANK', '0'))


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


_SAVE_POINT = os.environ.get('CRASH_IN_SAVE')
_SAVE_NAME = f"epoch_{os.environ.get('CRASH_SAVE_EPOCH', '0')}.pth"
_installed = []  # whether epoch_N.pth was installed in this process


def _install_save_crash():
    real_replace, real_remove = os.replace, os.remove

    def replace(src, dst, **kwargs):
        name = osp.basename(os.fspath(dst))
        if name == _SAVE_NAME and _SAVE_POINT == 'before_ckpt_install':
            _kill()
        real_replace(src, dst, **kwargs)
        if name == _SAVE_NAME:
            _installed.append(name)
            if _SAVE_POINT == 'after_ckpt':
                _kill()
        if (name == 'last_checkpoint' and _installed
                and _SAVE_POINT == 'after_pointer'):
            _kill()

    def remove(path, **kwargs):
        real_remove(path, **kwargs)
        if (_installed and _SAVE_POINT == 'after_remove'
                and os.fspath(path).endswith('.pth')):
            _kill()

    os.replace, os.remove = replace, remove


if _SAVE_POINT and _SAVE_POINT != 'before_save':
    _install_save_crash()


@HOOKS.register_module()
class CrashHook(Hook):

    def before_save_checkpoint(self, runner, checkpoint):
        if (_SAVE_POINT == 'before_save' and
                osp.basename(_SAVE_NAME) ==
                f"epoch_{checkpoint['meta']['epoch']}.pth"):
            _kill()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if not _armed(runner, 'CRASH'):
            return
        if int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')) > 0:
            return
        if os.environ.get('CRASH_MODE', 'kill') == 'wait':
            path = os.environ['CRASH_PID_FILE']
            with open(path + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.replace(path + '.tmp', path)
            while True:
                time.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class NaNLossHook(Hook):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not _armed(runner, 'NAN'):
            return
        model = unwrap_model(runner.model)
        loss = model.head.loss

        def nan_loss(*args, **kwargs):
            del model.head.loss  # once: back to the class's method
            return {k: v * float('nan') for k, v in
                    loss(*args, **kwargs).items()}

        model.head.loss = nan_loss
