"""One training run at a time per work dir."""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import os.path as osp
import shutil
import socket
import stat
import sys
from typing import Dict, List, Optional

from mmengine.dist import broadcast_object_list, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from ...checkpoint_safety import atomic_write

LOCK_NAME = 'train.lock'
# Locks this process holds, by path: a Runner that failed in this process
# (a notebook, a test) never reached after_run, and flock would refuse its
# own process's next run.
_HELD = {}


class WorkDirLockedError(RuntimeError):
    """Another training run holds the work dir (or it cannot be locked).

    Attributes:
        holder (dict | None): What the running holder wrote in the lock
            file; None when the lock file itself is the problem.
    """

    def __init__(self, message: str, holder: Optional[dict] = None):
        super().__init__(message)
        self.holder = holder


# flock errors that mean "this file system does not lock", not "held"
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
# The largest config dump the holder records (a refused run puts back
# the one it overwrote from this record).
_MAX_RECORDED = 2**20


class WorkDirLock:
    """An exclusive ``fcntl.flock`` on ``WORK_DIR/train.lock``, which holds
    the owner's pid, host, command and start time (JSON), and whatever the
    owner passes to :meth:`acquire`.

    The kernel releases a flock when its process dies, however it dies
    (SIGKILL, OOM), so a killed run never leaves the work dir stuck: the
    next run takes the lock over and can say whose it was. A
    ``train.lock`` that is a symbolic link is never followed and one that
    is not a regular file is never used: both are an error naming it.

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
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return {}
        try:
            with os.fdopen(fd) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _open(self) -> int:
        """The lock file, opened without following a link; an error saying
        what to do when it is not a plain file."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                         0o666)
        except OSError as e:
            if e.errno == errno.ELOOP or osp.islink(self.path):
                what = f'a symbolic link (to {os.readlink(self.path)})'
            elif osp.isdir(self.path):
                what = 'a directory'
            else:
                what = f'not writable ({e})'
            raise WorkDirLockedError(
                f'Cannot lock {osp.dirname(self.path)}: {self.path} is '
                f'{what}. The lock is never followed or replaced by a '
                'training run; remove it (or use another --work-dir).'
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise WorkDirLockedError(
                f'Cannot lock {osp.dirname(self.path)}: {self.path} is not a '
                'regular file; remove it (or use another --work-dir).')
        return fd

    def acquire(self, **record) -> Optional[dict]:
        """Take the lock.

        Args:
            **record: More holder information to write (JSON values).

        Returns:
            dict or None: The previous holder's information when a lock
            left by a run that is gone was taken over, else None.

        Raises:
            WorkDirLockedError: naming the holder, while it runs, or the
                lock file when it is not a plain file.
            OSError: when the file system does not support flock.
        """
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        stale = _HELD.pop(self.path, None)
        if stale is not None:
            stale.release()
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in _UNSUPPORTED:
                raise
            info = self.read()
            raise WorkDirLockedError(
                f'{osp.dirname(self.path)} is in use by another training run '
                f'({self.describe(info) if info else "holder unknown"}). '
                'Two runs in one work dir would overwrite each other\'s '
                'checkpoints. Use another --work-dir, or wait for that run '
                f'to end (or stop it); the lock is {self.path}.',
                holder=info) from None
        self._fd = fd
        _HELD[self.path] = self
        previous = self.read()
        info = dict(pid=os.getpid(), host=socket.gethostname(),
                    command=' '.join([sys.executable] + sys.argv),
                    start_time=datetime.datetime.now().isoformat(
                        timespec='seconds'), **record)
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


def _config_files(work_dir: str) -> Dict[str, str]:
    """The config dumps in ``work_dir`` (``*.py`` at its top), by name."""
    files = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(work_dir):
            if (entry.name.endswith('.py') and entry.is_file(
                    follow_symlinks=False)
                    and entry.stat().st_size <= _MAX_RECORDED):
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    with open(entry.path, encoding='utf-8') as f:
                        files[entry.name] = f.read()
    return files


def _undo_early_writes(runner, holder: dict) -> List[str]:
    """What a refused run wrote before the lock could be checked, put
    back: mmengine's ``Runner.__init__`` makes the log folder and dumps the
    config over ``work_dir/<config name>`` before any hook runs. The
    holder recorded the config files it found, so an overwritten one gets
    its holder-time text back and a new one is removed.

    Returns:
        list[str]: What could not be undone (for the error message).
    """
    left = []
    filename = getattr(runner.cfg, 'filename', None)
    if filename:
        dumped = osp.join(runner.work_dir, osp.basename(filename))
        recorded = (holder.get('config_files') or {})
        name = osp.basename(dumped)
        if 'config_files' not in holder:
            left.append(dumped)  # a holder that recorded nothing
        elif name in recorded:
            atomic_write(dumped, lambda f: f.write(
                recorded[name].encode('utf-8')))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(dumped)
    log_dir = runner.log_dir
    if holder.get('log_dir') == log_dir:
        left.append(log_dir)  # started in the holder's second: shared
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return left


@HOOKS.register_module()
class WorkDirLockHook(Hook):
    """Make a work dir belong to one training run at a time.

    In ``before_run`` of ``Runner.train()`` (before the checkpoint is
    loaded, the weights initialised or any checkpoint written), rank 0
    takes :class:`WorkDirLock` on ``work_dir/train.lock``. A second
    training run in the same work dir stops there, on every rank, with
    :class:`WorkDirLockedError` naming the holder (pid, host, command,
    start time). A lock left by a killed run is free (the kernel drops a
    flock with its process) and is taken over with a log line naming the
    old holder. The lock is released in ``after_run`` and, at the latest,
    when the process exits. ``test()`` / ``val()`` runs do not take it:
    evaluating a checkpoint of a running training is fine.

    No component can act before mmengine's ``Runner.__init__`` makes its
    log folder (``work_dir/<timestamp>``) and dumps its config
    (``work_dir/<config name>``). So the holder records the config files
    of the work dir and its log folder in the lock file, and a refused run
    puts back the config file it overwrote (or removes the one it added)
    and removes its log folder before it stops.

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
                previous = lock.acquire(
                    log_dir=runner.log_dir,
                    config_files=_config_files(runner.work_dir))
                self._lock = lock
            except WorkDirLockedError as e:
                error = str(e)
                if e.holder is not None:
                    left = _undo_early_writes(runner, e.holder)
                    if left:
                        error += (' This run could not undo its own writes '
                                  f"to {', '.join(left)}.")
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
