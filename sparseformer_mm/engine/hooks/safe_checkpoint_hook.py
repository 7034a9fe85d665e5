"""The checkpoint hook: whole files, old ones removed only after the new
one, and only good weights saved."""
import contextlib
import difflib
import inspect
import os
import os.path as osp
import re
from typing import List

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from ...checkpoint_safety import AtomicLocalBackend, remove_stale_temporaries
from ..checkpoint_load import checkpoint_to_load
from ..optim_wrappers import (SKIPPED_STEPS_KEY, NonFiniteLossError,
                              NonFiniteWeightsError, non_finite_tensors,
                              recovery_advice)

PENDING_KEY = 'pending_ckpt_removals'


class _DeferredRemovals:
    """Stands in for the hook's file backend while a save runs: ``remove``
    and ``rmtree`` only note the path (and record it in the message hub, so
    that the checkpoint being written knows it); everything else is the
    real backend's."""

    def __init__(self, backend, message_hub):
        self.backend, self._hub = backend, message_hub
        self.paths: List[str] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

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


# What CheckpointHook passes its **kwargs to (Runner.save_checkpoint),
# less what it passes itself: any other key is a typo, found when the hook
# is built rather than at the first save an epoch later.
_SAVE_ARGS = set(inspect.signature(Runner.save_checkpoint).parameters) - {
    'self', 'out_dir', 'filename', 'file_client_args', 'save_optimizer',
    'save_param_scheduler', 'meta', 'by_epoch', 'backend_args'}
_HOOK_ARGS = set(inspect.signature(CheckpointHook.__init__).parameters) - {
    'self', 'kwargs'}


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same options), whose saves lose
    nothing when killed and never keep bad weights.

    * **Whole files.** The checkpoint and the ``last_checkpoint`` pointer
      are written through the hook's file backend; with
      ``backend_args=dict(backend='atomic_local')`` (the runtime configs)
      each goes to a temporary file that is fsynced and renamed over the
      target (:class:`~sparseformer_mm.checkpoint_safety.AtomicLocalBackend`).
      A local ``out_dir`` without it gets a warning at the start.
    * **Removals after the save.** mmengine 0.10.7 deletes the oldest kept
      checkpoint (``max_keep_ckpts``) and the previous ``best_*`` before
      writing the new one: a kill while saving with ``max_keep_ckpts=1``
      leaves no checkpoint and a pointer to a deleted file. Here the
      deletions of one save wait until the checkpoint(s) and the pointer
      are written, so a kill at any point leaves a whole checkpoint that
      ``last_checkpoint`` names. A kill after the pointer but before the
      deletions leaves the old file; the checkpoint lists it (message hub
      ``pending_ckpt_removals``) and a resumed run removes it at start, with
      the temporary files killed saves left.
    * **Only good weights.** Weights (and EMA weights) with a NaN or inf
      are never written: :class:`NonFiniteWeightsError` stops the run. A
      save that comes while the optimizer wrapper is skipping steps for
      non-finite losses (``AmpOrFp32OptimWrapper(non_finite_loss='skip')``
      publishes the run of skips in the message hub) is held back, with a
      warning: a step can blow the weights up to finite values that make
      every later loss NaN, and such a checkpoint must not rotate the last
      good one out. Training that ends inside such a run raises
      :class:`NonFiniteLossError` naming the last good checkpoint.
    * ``save_best``: mmengine writes ``best_*.pth`` after validation, then
      saves the regular checkpoint again so that it records the new best. A
      run killed between the two leaves a best checkpoint that no
      checkpoint records; a resumed run adopts it (its score is in its own
      message hub) and removes the best it supersedes. Removals always act
      on files of this name in this run's ``out_dir``: a copied work dir
      never deletes in the one it came from.

    Args:
        **kwargs: ``CheckpointHook``'s arguments; an unknown one is an
            error naming the closest known one.
    """

    def __init__(self, *args, **kwargs):
        unknown = sorted(set(kwargs) - _HOOK_ARGS - _SAVE_ARGS)
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, sorted(_HOOK_ARGS), n=1)
            hint = f'; did you mean {close[0]!r}?' if close else ''
            raise TypeError(
                f'SafeCheckpointHook (default_hooks.checkpoint) got an '
                f'unknown argument {key!r}{hint} Its arguments are '
                f"CheckpointHook's: {', '.join(sorted(_HOOK_ARGS))}.")
        super().__init__(*args, **kwargs)
        self._deferred = None
        self._held_back = 0  # skips in a row at the last save attempt
        self._last_good = None  # the newest checkpoint written (or resumed)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        hub = runner.message_hub
        recorded = hub.get_info('last_ckpt')  # a resumed checkpoint's own
        if recorded:
            # a copied or moved work dir: the file of that name here
            with contextlib.suppress(OSError):
                here = checkpoint_to_load(runner.work_dir, resume=True)
                if here and osp.basename(here) == osp.basename(recorded):
                    hub.update_info('last_ckpt', here)
        self._last_good = hub.get_info('last_ckpt')
        if not is_main_process():
            return
        if (isinstance(self.file_backend, LocalBackend)
                and not isinstance(self.file_backend, AtomicLocalBackend)):
            runner.logger.warning(
                f'Checkpoints in {self.out_dir} are written in place: a job '
                'killed while saving can leave a truncated checkpoint or '
                "pointer. Set default_hooks.checkpoint.backend_args=dict("
                "backend='atomic_local') to write them whole.")
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

    def _hold_back(self, runner, what: str) -> bool:
        """Whether this save comes inside a run of skipped steps (the
        optimizer wrapper's count in the message hub), warning if so."""
        skips = int(runner.message_hub.get_info(SKIPPED_STEPS_KEY) or 0)
        self._held_back = skips
        if skips:
            runner.logger.warning(
                f'{what} not saved: the last {skips} step(s) were skipped '
                'for non-finite losses, so these weights may be ruined. The '
                f"last good checkpoint ({self._last_good or 'none yet'}) is "
                'kept.')
        return bool(skips)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # VERY_LOW priority (CheckpointHook's): after EMAHook has added
        # ema_state_dict, so the check sees every set of weights written.
        bad = []
        for key in ('state_dict', 'ema_state_dict'):
            bad += non_finite_tensors(checkpoint.get(key) or {})
        if not bad:
            return
        meta = checkpoint.get('meta') or {}
        raise NonFiniteWeightsError(
            f'{len(bad)} weight tensor(s) are non-finite (e.g. {bad[0]}) at '
            f"epoch {meta.get('epoch')}, iteration {meta.get('iter')}: a "
            'step overflowed them, so this checkpoint was not written.'
            + recovery_advice(self._last_good))

    def after_train(self, runner) -> None:
        super().after_train(runner)
        if self._held_back:
            raise NonFiniteLossError(
                f'Training ended after {self._held_back} step(s) in a row '
                'skipped for non-finite losses, so its last weights were not '
                'saved (they may be ruined).'
                + recovery_advice(self._last_good))

    def _save_checkpoint_with_step(self, runner, step, meta):
        """mmengine's, with the pointer written through the file backend
        and the rotation's removal after it (``_deferring``)."""
        if self._hold_back(runner, self.filename_tmpl.format(step)):
            return
        with self._deferring(runner):
            hub = runner.message_hub
            if self.max_keep_ckpts > 0 and not (
                    self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
                # (a best save calls this again for the same step)
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    old = self.keep_ckpt_ids.popleft()
                    if is_main_process():
                        self._remove(runner, self.filename_tmpl.format(old))
                self.keep_ckpt_ids.append(step)
                hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            filename = self.filename_tmpl.format(step)
            self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                         filename)
            # the checkpoint's message hub names itself (mmengine's order)
            hub.update_info('last_ckpt', self.last_ckpt)
            try:
                runner.save_checkpoint(
                    self.out_dir, filename, self.file_client_args,
                    save_optimizer=self.save_optimizer,
                    save_param_scheduler=self.save_param_scheduler,
                    meta=meta, by_epoch=self.by_epoch,
                    backend_args=self.backend_args, **self.args)
            except BaseException:
                hub.update_info('last_ckpt', self._last_good)
                raise
            self._last_good = self.last_ckpt
            if is_main_process():
                # like mmengine: the pointer is in work_dir, whatever out_dir
                pointer = osp.join(runner.work_dir, 'last_checkpoint')
                real = self._deferred.backend
                backend = real if isinstance(real, LocalBackend) \
                    else LocalBackend()
                backend.put_text(str(self.last_ckpt), pointer)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best and self._hold_back(runner, 'A best checkpoint'):
            return
        with self._deferring(runner):
            super()._save_best_checkpoint(runner, metrics)
