"""Checkpoint safety: what is unpickled, and how checkpoints are written.

``enable()`` runs on ``import sparseformer_mm``. Two policies, both on by
default because a user cannot see them in a config:

* **Weights-only loading of foreign files.** torch >= 2.6 loads with
  ``weights_only=True`` by default and mmengine 0.10.7's resume fails on
  its own checkpoints (``HistoryBuffer``, numpy objects). Instead of
  turning weights-only off globally, only checkpoints inside the running
  Runner's own work_dir (resume) are fully unpickled; everything else
  (``load_from``, ``init_cfg`` Pretrained, converters) loads weights-only,
  with an allow-list of the inert data types mmengine checkpoints hold.
* **Atomic saves.** Checkpoints and the ``last_checkpoint`` pointer are
  written to a uniquely named temporary file and renamed over the target.
  (The order of writes and deletions in a save is ``SafeCheckpointHook``'s.)
"""
import contextlib
import io
import os
import os.path as osp
import pickle
import re
import secrets
import socket
from typing import IO, Callable, Iterator, List

import torch

from .compat import _once


# --------------------------------------------------------------------------
# 1. torch >= 2.6 loads with ``weights_only=True`` by default; mmengine
#    0.10.7 calls plain ``torch.load`` and its resume fails on the
#    ``HistoryBuffer`` and numpy objects in its own checkpoints. We do not
#    turn weights-only off globally: only checkpoints inside the running
#    Runner's own work_dir (resume) are fully unpickled; everything else
#    (``load_from``, ``init_cfg`` Pretrained, converters) loads weights-only,
#    with an allow-list of the inert data types mmengine checkpoints hold.
# --------------------------------------------------------------------------
_TRUSTED_DIRS: List[str] = []


@contextlib.contextmanager
def trusted_checkpoint_dir(path: str) -> Iterator[None]:
    """Within this context, checkpoints under ``path`` are fully unpickled."""
    _TRUSTED_DIRS.append(osp.realpath(path))
    try:
        yield
    finally:
        _TRUSTED_DIRS.pop()


def _is_trusted(filename: str) -> bool:
    real = osp.realpath(filename)
    return any(osp.commonpath([real, d]) == d for d in _TRUSTED_DIRS)


def _history_buffer_getattr(obj, name):
    """Stand-in for ``getattr`` while unpickling: HistoryBuffer pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``; nothing else
    may be looked up."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a weights-only load')


def _safe_globals() -> list:
    """Inert types found in mmengine checkpoints (no code runs on load)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = [HistoryBuffer, np.ndarray, np.dtype,
               (_history_buffer_getattr, '__builtin__.getattr'),
               (_history_buffer_getattr, 'builtins.getattr')]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar]
    allowed += [type(np.dtype(t)) for t in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
        'uint8', 'bool')]
    return allowed


def load_weights_only(filename, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and mmengine's inert types.

    Raises:
        RuntimeError: naming the file and what to do when it holds anything
            else (e.g. pickled code objects).
    """
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except Exception as e:  # torch raises UnpicklingError wrapped variously
        if 'weights_only' not in str(e) and 'Unsupported global' not in str(e):
            raise
        raise RuntimeError(
            f'Refused to unpickle {filename}: it holds objects other than '
            f'tensors and plain data, and it is not inside the work_dir of '
            f'the running training. Checkpoints from elsewhere load '
            f'weights-only. If you trust the file, extract its weights '
            f"(e.g. torch.save(ckpt['state_dict'], ...)) in a Python "
            f'session you control. Original error: {e}') from e


def load_from_local(filename, map_location):
    """Replacement for mmengine's local-path checkpoint loader."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if _is_trusted(filename):
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    return load_weights_only(filename, map_location)


@_once
def fix_torch_weights_only_load() -> None:
    """Route mmengine's local checkpoint loads through ``load_from_local``
    and make ``Runner.resume`` trust its own work_dir."""
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)
    original_resume = Runner.resume

    def resume(self, filename, *args, **kwargs):
        with trusted_checkpoint_dir(self.work_dir):
            return original_resume(self, filename, *args, **kwargs)

    resume.__wrapped__ = original_resume
    Runner.resume = resume


# --------------------------------------------------------------------------
# 2. mmengine 0.10.7 writes checkpoints (``LocalBackend.put``) and the
#    ``last_checkpoint`` pointer (``CheckpointHook``) in place: a job killed
#    while saving leaves a truncated ``epoch_N.pth`` and/or an empty
#    pointer, and ``--resume`` then fails or silently starts from scratch.
#    Both are written to a temporary file in the same directory and
#    ``os.replace``d over the target, so the old file stays whole until the
#    new one is.
# --------------------------------------------------------------------------
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


class _AtomicTextFile(io.StringIO):
    """``open(path, 'w')`` stand-in that lands on close via ``atomic_write``."""

    def __init__(self, path: str, encoding: str = 'utf-8'):
        super().__init__()
        self._path, self._encoding = path, encoding

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            data = self.getvalue().encode(self._encoding)
            atomic_write(self._path, lambda f: f.write(data))
        self.close()
        return False


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's ``checkpoint_hook`` module: writing
    ``last_checkpoint`` becomes atomic; everything else is the builtin."""
    if (mode == 'w' and isinstance(file, (str, os.PathLike))
            and osp.basename(os.fspath(file)) == 'last_checkpoint'):
        return _AtomicTextFile(os.fspath(file),
                               kwargs.get('encoding') or 'utf-8')
    return open(file, mode, *args, **kwargs)


@_once
def fix_atomic_checkpoint_save() -> None:
    """Write local checkpoints and ``last_checkpoint`` atomically."""
    import mmengine.hooks.checkpoint_hook as checkpoint_hook
    import mmengine.runner as runner_pkg
    import mmengine.runner.checkpoint as ckpt_mod
    import mmengine.runner.runner as runner_mod
    from mmengine.fileio import LocalBackend, get_file_backend
    original = ckpt_mod.save_checkpoint

    def save_checkpoint(checkpoint, filename, file_client_args=None,
                        backend_args=None):
        filename = os.fspath(filename)
        if (file_client_args is None and not filename.startswith('pavi://')
                and isinstance(get_file_backend(
                    filename, backend_args=backend_args), LocalBackend)):
            atomic_write(filename, lambda f: torch.save(checkpoint, f))
        else:  # object stores write whole objects already
            original(checkpoint, filename, file_client_args, backend_args)

    save_checkpoint.__wrapped__ = original
    save_checkpoint.__doc__ = original.__doc__
    # Runner and the strategies import it by name.
    for mod in (ckpt_mod, runner_mod, runner_pkg):
        mod.save_checkpoint = save_checkpoint
    checkpoint_hook.open = _checkpoint_hook_open


def enable() -> None:
    """Turn both policies on (idempotent)."""
    fix_torch_weights_only_load()
    fix_atomic_checkpoint_save()
