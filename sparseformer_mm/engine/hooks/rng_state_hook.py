"""Makes a resumed training draw the same random numbers as an unbroken one."""
import functools
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed that depends on ``(seed, epoch, rank)`` only.

    ``SeedSequence`` hashes the three numbers, so neighbouring epochs and
    ranks get unrelated streams (``seed + epoch`` would make epoch 1 of seed
    0 the same as epoch 0 of seed 1).
    """
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global and torch's (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Reseed the global random generators at the start of every epoch.

    mmengine checkpoints the model, optimizer, schedulers, message hub and
    hook states (e.g. ``EMAHook``) but no random state: a resumed run starts
    its generators from the seed again, and its sampler and data-loader
    workers from the seed the *new* process drew when no seed was given. So
    the resumed epochs shuffle, augment and drop paths differently from an
    unbroken run. This hook closes both gaps:

    * before each training epoch, python's ``random``, numpy's global
      generator and torch's are seeded with :func:`epoch_seed` of the run's
      seed, the epoch (and the rank with ``diff_rank_seed``). Whatever ran
      before (validation, the previous epoch, a restart) cannot shift the
      random numbers of the epoch, on any number of ranks.
    * the training sampler's shuffle seed and the data-loader workers' seed
      are saved in the checkpoint (``meta['resume_seeds']``) and put back on
      resume, before the first resumed epoch builds its iterator.

    With ``EpochBasedTrainLoop`` (checkpoints at epoch ends, the default),
    a run killed mid-epoch and resumed with ``--resume`` redoes the
    interrupted epoch from its start and, in deterministic mode, ends with
    the same weights as the unbroken run. The runtime base configs list
    this hook in ``custom_hooks``, so every entry point that builds the
    Runner from the config gets it.

    Args:
        priority (str | int): Runs first, so that any other hook drawing
            random numbers in ``before_train_epoch`` sees the reseeded
            generators. Defaults to ``'HIGHEST'``.
    """

    def __init__(self, priority='HIGHEST') -> None:
        self.priority = priority

    def before_train_epoch(self, runner) -> None:
        rank = get_rank() if runner._randomness_cfg.get(
            'diff_rank_seed') else 0
        seed_everything(epoch_seed(runner.seed, runner.epoch, rank))

    @staticmethod
    def _train_dataloader(runner):
        loop = getattr(runner, '_train_loop', None)
        return getattr(loop, 'dataloader', None)  # None until train() builds

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loader = self._train_dataloader(runner)
        if loader is None:
            return
        seeds = dict(sampler=getattr(loader.sampler, 'seed', None),
                     worker=_worker_seed(loader))
        checkpoint.setdefault('meta', {})['resume_seeds'] = seeds

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # ``load_from`` (fine-tuning) is a new run with its own seeds.
        if not getattr(runner, '_resume', False):
            return
        seeds = (checkpoint.get('meta') or {}).get('resume_seeds') or {}
        loader = self._train_dataloader(runner)
        if loader is None:
            return
        if seeds.get('sampler') is not None and hasattr(
                loader.sampler, 'seed'):
            # DefaultSampler / RepeatAugSampler read it when an epoch's
            # iterator is made, i.e. after this.
            loader.sampler.seed = seeds['sampler']
        fn = loader.worker_init_fn
        if seeds.get('worker') is not None and _worker_seed(
                loader) is not None:
            loader.worker_init_fn = functools.partial(
                fn.func, *fn.args, **{**fn.keywords, 'seed': seeds['worker']})


def _worker_seed(loader) -> Optional[int]:
    """The seed mmengine bound into the loader's ``worker_init_fn``."""
    fn = loader.worker_init_fn
    if isinstance(fn, functools.partial):
        return fn.keywords.get('seed')
    return None
