"""A CheckpointHook that deletes old checkpoints only after the new one."""
import contextlib
import os
import os.path as osp
import re
from typing import List

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ...checkpoint_safety import remove_stale_temporaries

PENDING_KEY = 'pending_ckpt_removals'


class _DeferredRemovals:
    """Stands in for the hook's file backend while a save runs: ``remove``
    and ``rmtree`` only note the path (and record it in the message hub, so
    that the checkpoint being written knows it); everything else is the
    real backend's."""

    def __init__(self, backend, message_hub):
        self._backend, self._hub = backend, message_hub
        self.paths: List[str] = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def remove(self, path):
        self._note(path)

    def rmtree(self, path):
        self._note(path)

    def _note(self, path):
        self.paths.append(str(path))
        self._hub.update_info(PENDING_KEY, list(self.paths))


def _runtime_info(path: str) -> dict:
    """The message hub's runtime info saved in a checkpoint of this run
    (its own work dir: trusted, loaded fully; memory-mapped, so the
    tensors are not read)."""
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True,
                          weights_only=False)
    except (OSError, RuntimeError, ValueError):
        return {}
    hub = ckpt.get('message_hub') if isinstance(ckpt, dict) else None
    return dict(hub.get('runtime_info', {})) if isinstance(hub, dict) else {}


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, with old checkpoints removed only
    after the new checkpoint and the ``last_checkpoint`` pointer are on
    disk.

    mmengine 0.10.7 deletes the oldest kept checkpoint (``max_keep_ckpts``)
    and the previous ``best_*`` checkpoint *before* writing the new one: a
    job killed while saving with ``max_keep_ckpts=1`` is left with no
    checkpoint and a pointer to a deleted file. Here the deletions of one
    save are held back until the checkpoint(s) and the pointer have been
    written (both atomically, ``sparseformer_mm.checkpoint_safety``), so a
    kill at any point leaves a whole checkpoint that ``last_checkpoint``
    names. A kill after the pointer but before the deletions leaves the old
    file behind; the checkpoint lists it (message hub key
    ``pending_ckpt_removals``) and a resumed run removes it at start, with
    the temporary files killed saves left.

    ``save_best``: mmengine writes ``best_*.pth`` after validation, then
    saves the regular checkpoint again so that it records the new best. A
    run killed between the two leaves a best checkpoint that no checkpoint
    records; a resumed run adopts it (its score is in its own message hub)
    and removes the best it supersedes, so one best file remains and the
    comparison goes on from the right score. Removals always act on files
    of this name in this run's ``out_dir``: a copied work dir never deletes
    in the one it came from. All arguments are ``CheckpointHook``'s.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        hub = runner.message_hub
        if runner._resume and getattr(runner, '_has_loaded', False):
            self._localise_best(runner)
            self._adopt_unrecorded_best(runner)
        for path in hub.runtime_info.get(PENDING_KEY, None) or []:
            # A run killed between its pointer write and its deletions.
            if osp.basename(path) not in self._kept(runner):
                self._remove(runner, path)
        hub.update_info(PENDING_KEY, [])
        if osp.isdir(str(self.out_dir)):
            for path in remove_stale_temporaries(str(self.out_dir)):
                runner.logger.info(f'Removed {path}, the temporary file of '
                                   f'a save that was interrupted.')

    def _kept(self, runner) -> set:
        """File names of the checkpoints this run still uses (names: the
        message hub of a copied work dir holds the old folder's paths)."""
        hub = runner.message_hub
        kept = {hub.get_info('last_ckpt'), getattr(self, 'best_ckpt_path',
                                                    None)}
        kept.update((getattr(self, 'best_ckpt_path_dict', None)
                     or {}).values())
        kept.update(hub.runtime_info.get(k) for k in hub.runtime_info
                    if k.startswith('best_ckpt'))
        kept.update(self.file_backend.join_path(
            self.out_dir, self.filename_tmpl.format(step))
            for step in getattr(self, 'keep_ckpt_ids', ()))
        return {osp.basename(str(p)) for p in kept if p}

    def _best_keys(self):
        """``(key indicator, file name pattern, hub score key, hub ckpt
        key)`` per key indicator, as mmengine names them."""
        parts = re.split(r'\{[^}]*\}', self.filename_tmpl, maxsplit=1)
        # mmengine sets key_indicators only with save_best
        if len(parts) != 2 or not getattr(self, 'key_indicators', None):
            return
        pre, post = parts
        step = f'{re.escape(pre)}(\\d+){re.escape(post)}'
        single = len(self.key_indicators) == 1
        for key in self.key_indicators:
            # 'auto' is resolved at the first validation: any indicator
            name = '.+' if key == 'auto' else re.escape(key.replace('/', '_'))
            yield (key, re.compile(f'^best_{name}_{step}$'),
                   'best_score' if single else f'best_score_{key}',
                   'best_ckpt' if single else f'best_ckpt_{key}')

    def _set_best(self, runner, key, ckpt_key, path) -> None:
        runner.message_hub.update_info(ckpt_key, path)
        if len(self.key_indicators) == 1:
            self.best_ckpt_path = path
        else:
            self.best_ckpt_path_dict[key] = path

    def _localise_best(self, runner) -> None:
        """A work dir copied or moved elsewhere records its best files by
        their old absolute paths: use the files of those names here (else
        mmengine would not find a moved one to replace)."""
        hub = runner.message_hub
        for key, _, _, ckpt_key in self._best_keys():
            recorded = hub.runtime_info.get(ckpt_key)
            if not recorded:
                continue
            local = self.file_backend.join_path(self.out_dir,
                                                osp.basename(recorded))
            if local != recorded and self.file_backend.isfile(local):
                self._set_best(runner, key, ckpt_key, local)

    def _adopt_unrecorded_best(self, runner) -> None:
        """After a resume: record the newest best checkpoint (not newer than
        the resumed step) when it is newer than the one the resumed
        checkpoint records."""
        if not self.save_best or not osp.isdir(str(self.out_dir)):
            return
        hub = runner.message_hub
        resumed = runner.epoch if self.by_epoch else runner.iter
        names = os.listdir(str(self.out_dir))
        for key, pattern, score_key, ckpt_key in self._best_keys():
            found = sorted((int(m[1]), n) for n in names
                           if (m := pattern.match(n)) and int(m[1]) <=
                           resumed)
            recorded = hub.runtime_info.get(ckpt_key)
            if recorded:
                m = pattern.match(osp.basename(recorded))
                if not found or m is None or int(m[1]) >= found[-1][0]:
                    continue  # only a newer best than the recorded one
            elif not found:
                continue
            path = self.file_backend.join_path(self.out_dir, found[-1][1])
            info = _runtime_info(path)
            if info.get(score_key) is None:
                continue
            hub.update_info(score_key, info[score_key])
            self._set_best(runner, key, ckpt_key, path)
            runner.logger.info(
                f'{path} (best {info[score_key]}) was saved by the '
                'interrupted run after its last recorded checkpoint: it is '
                'the best checkpoint now.')
            if recorded:
                self._remove(runner, recorded)  # the best it superseded

    def _remove(self, runner, path) -> None:
        # By name, in this run's folder: paths recorded in a checkpoint are
        # absolute, and a copied work dir must not delete files in the one
        # it was copied from.
        path = self.file_backend.join_path(self.out_dir, osp.basename(path))
        with contextlib.suppress(FileNotFoundError):
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed checkpoints
                self.file_backend.rmtree(path)

    @contextlib.contextmanager
    def _deferring(self, runner):
        """Hold back deletions until the outermost save has written its
        checkpoint(s) and pointer; drop them if the save fails."""
        if self._deferred is not None:  # nested: best -> regular save
            yield
            return
        backend = self.file_backend
        self._deferred = self.file_backend = _DeferredRemovals(
            backend, runner.message_hub)
        try:
            yield
            paths = self._deferred.paths
        finally:
            self.file_backend, self._deferred = backend, None
        kept = self._kept(runner)
        for path in paths:
            if osp.basename(path) not in kept:
                self._remove(runner, path)
        runner.message_hub.update_info(PENDING_KEY, [])

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._deferring(runner):
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._deferring(runner):
            super()._save_best_checkpoint(runner, metrics)
