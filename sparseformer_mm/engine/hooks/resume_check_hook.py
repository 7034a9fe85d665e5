"""Resume: a clear choice of checkpoint, and the config's learning rate."""
import os
import os.path as osp
import re
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

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


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return osp.commonpath([path, folder]) == folder


def _scale_groups(groups, target_lrs, log) -> List[float]:
    """Rescale saved param groups to the config's base lr; returns the
    factor per group (1.0 where unchanged)."""
    factors = []
    for i, (group, target) in enumerate(zip(groups, target_lrs)):
        saved = group.get('initial_lr', group['lr'])
        factor = target / saved if saved else 1.0
        if abs(factor - 1) < 1e-9:
            factors.append(1.0)
            continue
        log(f'param group {i}: base lr {saved:g} in the checkpoint -> '
            f'{target:g} from the config (current lr {group["lr"]:g} -> '
            f'{group["lr"] * factor:g})')
        group['lr'] *= factor
        group['initial_lr'] = target
        factors.append(factor)
    return factors


def _scale_schedulers(states, factors) -> None:
    for state in states or []:
        if state.get('param_name', 'lr') != 'lr':
            continue  # momentum / weight decay schedules keep theirs
        for key in ('base_values', '_last_value'):
            values = state.get(key)
            if isinstance(values, list):
                state[key] = [v * f for v, f in zip(values, factors)] + \
                    values[len(factors):]


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Resume from the checkpoint the user means, or say why not; and let a
    resumed run take a new learning rate.

    mmengine's auto-resume (``--resume`` without a path, ``resume=True``
    without ``load_from``) reads ``work_dir/last_checkpoint`` and passes its
    text on as is. In ``before_run`` of ``Runner.train()`` this hook checks
    it first:

    * no pointer: a warning that training starts from scratch (naming the
      newest ``epoch_N.pth`` / ``iter_N.pth`` there, if any);
    * an empty pointer, or one naming a file that does not exist: an error
      naming the pointer, the missing file and the newest checkpoint in the
      work dir, with the command to use;
    * a pointer to a file outside the work dir (a work dir copied or moved
      elsewhere) when a file of that name is in the work dir: that file is
      resumed, with a log line (a checkpoint ``out_dir`` elsewhere that
      holds the file is used as before);
    * ``--resume PATH`` / ``load_from`` that does not exist: an error naming
      it.

    With ``config_lr=True`` (default), a resumed run whose config sets a
    different base learning rate than the checkpoint's (e.g.
    ``--resume --cfg-options optim_wrapper.optimizer.lr=1e-5`` after a
    NaN) takes the config's: mmengine restores the optimizer's saved lr,
    which would silently win. Each param group's saved lr, base lr and the
    lr schedulers' base and last values are scaled by ``config / saved``,
    so the schedule continues at the new scale; a log line says so. An
    unchanged config changes nothing (a resume stays bit-exact).

    Args:
        config_lr (bool): Let the config's learning rate win on resume.
            Defaults to True.
    """

    priority = 'HIGHEST'

    def __init__(self, config_lr: bool = True):
        self.config_lr = config_lr
        self._config_lrs = None

    def before_run(self, runner) -> None:
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # not Runner.train()
        if not runner._resume or getattr(runner, '_has_loaded', False):
            return
        if runner._load_from is None:
            runner._load_from = self._auto_target(runner)
            if runner._load_from is None:
                runner._resume = False  # what mmengine does, said aloud
        else:
            path = str(runner._load_from)
            if '://' not in path and not osp.isfile(osp.expanduser(path)):
                newest = newest_checkpoint(runner.work_dir)
                hint = f' The newest checkpoint in {runner.work_dir} is ' \
                    f'{newest}.' if newest else ''
                raise FileNotFoundError(
                    f'Cannot resume: {path} (--resume PATH / load_from) '
                    f'does not exist.{hint}')
        if self.config_lr and runner._resume:
            self._config_lrs = self._lrs(runner)

    @staticmethod
    def _auto_target(runner) -> Optional[str]:
        work_dir = runner.work_dir
        pointer = osp.join(work_dir, 'last_checkpoint')
        newest = newest_checkpoint(work_dir)
        if not osp.exists(pointer):
            found = (f' (it holds {newest}: to continue from it, run with '
                     f'--resume {newest})') if newest else ''
            runner.logger.warning(
                f'Resume requested, but {work_dir} has no last_checkpoint '
                f'file{found}: training starts from scratch.')
            return None
        with open(pointer) as f:
            target = f.read().strip()
        todo = (f'Resume from the newest checkpoint there with --resume '
                f'{newest}' if newest else
                'There is no checkpoint in the work dir to resume from; '
                f'delete {pointer} to start from scratch')
        if not target:
            raise FileNotFoundError(
                f'Cannot resume: the pointer {pointer} is empty (it should '
                f'hold the path of the last checkpoint). {todo}.')
        if not _inside(target, work_dir):
            local = osp.join(work_dir, osp.basename(target))
            if osp.isfile(local):
                runner.logger.info(
                    f'{pointer} names {target}, outside this work dir (was '
                    f'it copied or moved?): resuming from {local}.')
                return local
        if not osp.isfile(target):
            raise FileNotFoundError(
                f'Cannot resume: {pointer} names {target}, which does not '
                f'exist. {todo}.')
        return target

    @staticmethod
    def _lrs(runner):
        from mmengine.optim import OptimWrapperDict
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return {name: [g.get('initial_lr', g['lr'])
                           for g in w.optimizer.param_groups]
                    for name, w in wrapper.items()}
        return [g.get('initial_lr', g['lr'])
                for g in wrapper.optimizer.param_groups]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._config_lrs is None or 'optimizer' not in checkpoint:
            return
        targets, self._config_lrs = self._config_lrs, None
        lines = []
        optim, scheds = checkpoint['optimizer'], checkpoint.get(
            'param_schedulers')
        if isinstance(targets, dict):
            for name, lrs in targets.items():
                factors = _scale_groups(
                    optim[name]['param_groups'], lrs,
                    lambda s, n=name: lines.append(f'{n} {s}'))
                if isinstance(scheds, dict):
                    _scale_schedulers(scheds.get(name), factors)
        else:
            factors = _scale_groups(optim['param_groups'], targets,
                                    lines.append)
            if isinstance(scheds, list):
                _scale_schedulers(scheds, factors)
        if lines:
            runner.logger.warning(
                'Resuming with the learning rate of the config, not the '
                'checkpoint\'s (ResumeCheckHook(config_lr=True)); the '
                'schedule continues rescaled: ' + '; '.join(lines))
