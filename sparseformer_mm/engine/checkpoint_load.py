"""Which checkpoint a run loads: one answer for every caller.

``CheckpointLoadHook`` (in the runtimes), ``tools/train.py`` (a torchrun
restart), ``tools/test.py`` and the advice of a stopped run ("resume from
...") all ask :func:`checkpoint_to_load`.
"""
import os
import os.path as osp
import re
from typing import Optional

POINTER = 'last_checkpoint'
_CKPT_RE = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def newest_checkpoint(folder: str) -> Optional[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` in ``folder`` with the largest
    N (None if there is none)."""
    try:
        names = [(int(m[2]), name) for name in os.listdir(folder)
                 if (m := _CKPT_RE.match(name))]
    except OSError:
        return None
    return osp.join(folder, max(names)[1]) if names else None


def read_pointer(work_dir: str) -> Optional[str]:
    """The text of ``work_dir/last_checkpoint``, stripped as mmengine's
    ``find_latest_checkpoint`` reads it (None without a pointer)."""
    try:
        with open(osp.join(work_dir, POINTER)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return osp.commonpath([path, folder]) == folder


def _is_url(path: str) -> bool:
    return '://' in path


def _resume_hint(work_dir: str, pointer: str) -> str:
    newest = newest_checkpoint(work_dir)
    if newest:
        return f'Resume from the newest checkpoint there with --resume {newest}'
    return ('There is no checkpoint in the work dir to resume from; delete '
            f'{pointer} to start from scratch')


def checkpoint_to_load(work_dir: str, load_from: Optional[str] = None,
                       resume: bool = False) -> Optional[str]:
    """The checkpoint a run with these settings loads, or None.

    The choice of mmengine's ``Runner.load_or_resume`` (``resume`` with
    ``load_from=None`` reads ``work_dir/last_checkpoint``; otherwise
    ``load_from``, resumed or loaded), with these rules:

    * no pointer: None (the run starts from scratch);
    * an empty pointer, or one naming a file that does not exist: an error
      naming the pointer and the missing file, with the command to use;
    * a pointer naming a file outside ``work_dir`` (a work dir copied or
      moved elsewhere keeps the old absolute path) when a file of that name
      is in ``work_dir``: that file;
    * a local ``load_from`` (``--resume PATH``) that does not exist: an
      error naming it. URLs are returned as they are.

    Args:
        work_dir (str): The run's work dir.
        load_from (str, optional): ``load_from`` / ``--resume PATH``.
        resume (bool): ``resume`` / ``--resume``.

    Raises:
        FileNotFoundError: saying what to type instead.
    """
    if load_from is not None:
        path = str(load_from)
        if not _is_url(path) and not osp.isfile(osp.expanduser(path)):
            what = '--resume PATH / load_from' if resume else 'load_from'
            newest = newest_checkpoint(work_dir)
            hint = (f' The newest checkpoint in {work_dir} is {newest}.'
                    if newest else '')
            raise FileNotFoundError(
                f'Cannot {"resume" if resume else "load"}: {path} ({what}) '
                f'does not exist.{hint}')
        return path
    if not resume:
        return None
    target = read_pointer(work_dir)
    if target is None:
        return None
    pointer = osp.join(work_dir, POINTER)
    if not target:
        raise FileNotFoundError(
            f'Cannot resume: the pointer {pointer} is empty (it should hold '
            f'the path of the last checkpoint). '
            f'{_resume_hint(work_dir, pointer)}.')
    if not _is_url(target) and not _inside(target, work_dir):
        local = osp.join(work_dir, osp.basename(target))
        if osp.isfile(local):
            return local
    if not _is_url(target) and not osp.isfile(target):
        raise FileNotFoundError(
            f'Cannot resume: {pointer} names {target}, which does not '
            f'exist. {_resume_hint(work_dir, pointer)}.')
    return target
