"""One training run at a time per work dir."""
import datetime
import errno
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Optional

from mmengine.dist import broadcast_object_list, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

LOCK_NAME = 'train.lock'
# Locks this process holds, by path: a Runner that failed in this process
# (a notebook, a test) never reached after_run, and flock would refuse its
# own process's next run.
_HELD = {}


class WorkDirLockedError(RuntimeError):
    """Another training run holds the work dir."""


class WorkDirLock:
    """An exclusive ``fcntl.flock`` on ``WORK_DIR/train.lock``, which holds
    the owner's pid, host, command and start time (JSON).

    The kernel releases a flock when its process dies, however it dies
    (SIGKILL, OOM), so a killed run never leaves the work dir stuck: the
    next run takes the lock over and can say whose it was.

    Args:
        work_dir (str): The folder to own.
    """

    def __init__(self, work_dir: str):
        self.path = osp.join(osp.abspath(work_dir), LOCK_NAME)
        self._fd: Optional[int] = None

    @staticmethod
    def describe(info: dict) -> str:
        return (f"pid {info.get('pid')} on host {info.get('host')}, started "
                f"{info.get('start_time')}: {info.get('command')}")

    def read(self) -> dict:
        """The holder information in the lock file ({} if none/unreadable)."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def acquire(self) -> Optional[dict]:
        """Take the lock.

        Returns:
            dict or None: The previous holder's information when a lock
            left by a run that is gone was taken over, else None.

        Raises:
            WorkDirLockedError: naming the holder, while it runs.
        """
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        stale = _HELD.pop(self.path, None)
        if stale is not None:
            stale.release()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            info = self.read()
            raise WorkDirLockedError(
                f'{osp.dirname(self.path)} is in use by another training run '
                f'({self.describe(info) if info else "holder unknown"}). '
                'Two runs in one work dir would overwrite each other\'s '
                'checkpoints. Use another --work-dir, or wait for that run '
                f'to end (or stop it); the lock is {self.path}.') from None
        self._fd = fd
        _HELD[self.path] = self
        previous = self.read()
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    command=' '.join([sys.executable] + sys.argv),
                    start_time=datetime.datetime.now().isoformat(
                        timespec='seconds'))
        data = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return previous or None

    def release(self) -> None:
        """Drop the lock (the file stays; an unlocked file is free)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if _HELD.get(self.path) is self:
            del _HELD[self.path]
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@HOOKS.register_module()
class WorkDirLockHook(Hook):
    """Make a work dir belong to one training run at a time.

    In ``before_run`` of ``Runner.train()`` (before the checkpoint is
    loaded or anything is written), rank 0 takes :class:`WorkDirLock` on
    ``work_dir/train.lock``. A second training run in the same work dir
    stops there, on every rank, with :class:`WorkDirLockedError` naming the
    holder (pid, host, command, start time). A lock left by a killed run is
    free (the kernel drops a flock with its process) and is taken over
    with a log line naming the old holder. The lock is released in
    ``after_run`` and, at the latest, when the process exits. ``test()`` /
    ``val()`` runs do not take it: evaluating a checkpoint of a running
    training is fine.

    On a network file system flock is as reliable as that file system's
    locking (NFSv4 and Lustre with ``flock`` mount support it); where it is
    not supported the run goes on with a warning.
    """

    priority = 'HIGHEST'

    def __init__(self):
        self._lock: Optional[WorkDirLock] = None

    def before_run(self, runner) -> None:
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # not Runner.train()
        error, previous = None, None
        if get_rank() == 0:
            lock = WorkDirLock(runner.work_dir)
            try:
                previous = lock.acquire()
                self._lock = lock
            except WorkDirLockedError as e:
                error = str(e)
            except OSError as e:  # flock unsupported on this file system
                runner.logger.warning(
                    f'Could not lock {lock.path} ({e}): nothing stops a '
                    'second training run in this work dir.')
        if get_world_size() > 1:
            box = [error]
            broadcast_object_list(box)
            error = box[0]
        if error:
            raise WorkDirLockedError(error)
        if previous:
            runner.logger.info(
                f'Took over the lock of {runner.work_dir} from a run that is '
                f'no longer running ({WorkDirLock.describe(previous)}).')

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
