"""Train a model with an mmpretrain / mmaction2 config (mmaction2's CLI).

Everything a run needs is in the config and its registered components
(AMP or fp32 by machine, per-epoch reseeding, which checkpoint a resume
loads and at which learning rate): mmaction2's or mmpretrain's
``tools/train.py``, ``mim train`` and ``Runner.from_cfg(cfg).train()``
train the same way. This tool adds the options below and distributed runs
on CPU (gloo).
"""
import argparse
import os

from find_python import require_stack

require_stack()  # before torch: a wrong Python gets the command to run

import torch  # noqa: E402
from cli_utils import (check_amp_device, load_config,  # noqa: E402
                       setup_cpu_distributed, teardown_distributed)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import sparseformer_mm  # noqa: E402,F401  (compat fixes, registries)
from sparseformer_mm.engine import checkpoint_to_load  # noqa: E402

AMP_CAPABLE = ('OptimWrapper', 'AmpOptimWrapper', 'AmpOrFp32OptimWrapper')


def parse_args():
    parser = argparse.ArgumentParser(description='Train a recognizer')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, without a value, from '
        'the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='require automatic mixed precision (GPU only; '
                        'configs with AmpOrFp32OptimWrapper use it on GPUs '
                        'anyway)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the real total batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-rank-seed', action='store_true',
                        help='a different seed on each rank')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms where they exist '
                        '(grid_sample and 3-D max-pool backward on CUDA have '
                        'none: they only warn)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=8')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Fold the training options into the config, as mmaction2's tool does
    (``--seed`` / ``--deterministic`` also override a config's own)."""
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        assert optim_wrapper in AMP_CAPABLE, (
            f'--amp needs one of {AMP_CAPABLE}, got {optim_wrapper}')
        # the configs' wrapper (loss scale to the backbone, NaN policy),
        # required to run AMP
        cfg.optim_wrapper.type = 'AmpOrFp32OptimWrapper'
        cfg.optim_wrapper.amp = True
    if (int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')) > 0
            and checkpoint_to_load(cfg.work_dir, resume=True)):
        # torchrun --max-restarts restarted the job after a failure: carry
        # on from the latest checkpoint of this run (not from a --resume
        # PATH given at the first start) instead of starting over.
        args.resume = 'auto'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        if not (cfg.get('auto_scale_lr') or {}).get('base_batch_size'):
            raise ValueError(
                f'--auto-scale-lr needs auto_scale_lr.base_batch_size in '
                f'{args.config} (the total batch size its lr is set for).')
        cfg.auto_scale_lr.enable = True
    randomness = dict(cfg.get('randomness', None) or {})
    randomness.setdefault('seed', None)
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.deterministic:
        randomness['deterministic'] = True
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    cfg.randomness = randomness
    return cfg


def main():
    from cfg_check import check_cfg_options
    check_cfg_options()  # before argparse: an item without '=' crashes it
    args = parse_args()
    cfg = merge_args(load_config(args), args)
    check_amp_device(cfg)
    setup_cpu_distributed(cfg)  # no-op with GPUs or without a launcher
    runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
              Runner.from_cfg(cfg))
    if args.deterministic:
        # mmengine turns on strict determinism; grid_sample's and
        # MaxPool3d's CUDA backward have no deterministic kernel.
        torch.use_deterministic_algorithms(True, warn_only=True)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
