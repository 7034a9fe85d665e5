"""Test-only hook that crashes a training process on request.

Imported by the configs the crash tests write (``custom_imports``); it does
nothing unless ``CRASH_AT_ITER`` is set in the environment:

* ``CRASH_AT_ITER``: the global iteration (1-based) after which to crash.
* ``CRASH_RANK`` (default 0): only this rank crashes.
* ``CRASH_MODE``: ``kill`` (default) sends SIGKILL to this process;
  ``wait`` writes ``CRASH_PID_FILE`` (our pid) and sleeps, so that the test
  kills it from outside at a moment it knows.
* Only the first attempt of an elastic job crashes
  (``TORCHELASTIC_RESTART_COUNT`` is 0 or unset).
"""
import os
import signal
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CrashHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        at = os.environ.get('CRASH_AT_ITER')
        if at is None or runner.iter + 1 != int(at):
            return
        if get_rank() != int(os.environ.get('CRASH_RANK', '0')):
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
