"""A CheckpointHook that deletes old checkpoints only after the new one."""
import contextlib
import os.path as osp
from typing import List

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
    the temporary files killed saves left. All arguments are
    ``CheckpointHook``'s.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        hub = runner.message_hub
        for path in hub.runtime_info.get(PENDING_KEY, None) or []:
            # A run killed between its pointer write and its deletions.
            # By name, in this run's folder: a copied work dir must not
            # delete files in the one it was copied from.
            path = self.file_backend.join_path(self.out_dir,
                                               osp.basename(path))
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

    def _remove(self, runner, path) -> None:
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
