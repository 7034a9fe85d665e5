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
"""
import os
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


@HOOKS.register_module()
class CrashHook(Hook):

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
