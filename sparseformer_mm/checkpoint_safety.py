"""Checkpoint safety: how checkpoints are written.

* **Weights-only loading** is ``compat.fix_mmengine_weights_only_load``
  (``load_weights_only`` is re-exported here).
* **Atomic saves.** :class:`AtomicLocalBackend`, the mmengine file backend
  ``'atomic_local'`` that the runtime configs name in
  ``default_hooks.checkpoint.backend_args``, writes each file to a uniquely
  named temporary file and renames it over the target. (The order of
  writes and deletions in a save is ``SafeCheckpointHook``'s.)
"""
import contextlib
import os
import os.path as osp
import re
import secrets
import socket
from typing import IO, Callable, List

from mmengine.fileio import LocalBackend, register_backend

from .compat import load_weights_only  # noqa: F401


# ``load_weights_only`` lives in ``compat`` (the mmengine / torch >= 2.6
# weights-only fix); imported above so that its users' imports still work.


# mmengine 0.10.7 writes checkpoints (``LocalBackend.put``) and the
# ``last_checkpoint`` pointer (``CheckpointHook``) in place: a job killed
# while saving leaves a truncated ``epoch_N.pth`` and/or an empty pointer,
# and ``--resume`` then fails or silently starts from scratch.
def temporary_name(path: str) -> str:
    """A new, unique temporary name next to ``path``:
    ``.NAME.HOST.PID.RANDOM.tmp``. Two processes (or threads) saving the
    same name never share a temporary file; the host and pid say whose a
    leftover one is (see :func:`remove_stale_temporaries`)."""
    folder, name = osp.split(osp.abspath(path))
    host = socket.gethostname().replace(os.sep, '_')
    return osp.join(folder, f'.{name}.{host}.{os.getpid()}.'
                    f'{secrets.token_hex(4)}.tmp')


_TMP_RE = re.compile(r'^\.(?P<name>.+)\.(?P<host>[^/]+)\.(?P<pid>\d+)\.'
                     r'[0-9a-f]{8}\.tmp$')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove the temporary files :func:`atomic_write` left in ``folder``
    when its process was killed: those made on this host by a process that
    no longer runs (a live writer's, or another host's, are left alone).

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    host = socket.gethostname().replace(os.sep, '_')
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            m = _TMP_RE.match(entry)
            if (m and m['host'] == host and int(m['pid']) != os.getpid()
                    and not _pid_alive(int(m['pid']))):
                with contextlib.suppress(OSError):
                    os.remove(osp.join(folder, entry))
                    removed.append(osp.join(folder, entry))
    return removed


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` all at once: ``write(f)`` fills a new temporary file
    next to it (:func:`temporary_name`, unique per call), which is flushed,
    fsynced and renamed over ``path``. A crash at any point leaves ``path``
    as it was (or absent), never partial; concurrent writers of one path
    each install a whole file (the last rename wins); if ``write`` raises,
    the temporary file is removed.

    Args:
        path (str): The file to (over)write.
        write (callable): Called with the open binary file object.
    """
    path = osp.abspath(path)
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    try:
        # O_EXCL: never write into a file another writer has open; 0o666
        # lets the umask decide the mode, as a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    # Make the rename itself durable (best effort: not every FS allows it).
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing whole files only.

    ``put`` / ``put_text`` go through :func:`atomic_write`: a job killed
    while writing leaves the previous file (or none), never a truncated
    one. Named in a config as ``backend_args=dict(backend='atomic_local')``
    (the checkpoint hook's, which writes checkpoints and the
    ``last_checkpoint`` pointer through it); everything else is
    ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(os.fspath(filepath), lambda f: f.write(obj))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)
