"""Evaluate a checkpoint with an mmpretrain / mmaction2 config."""
import argparse
import os
import sys

from find_python import require_stack

require_stack()  # before torch: a wrong Python gets the command to run

from cfg_check import check_cfg_options  # noqa: E402
from cli_utils import (load_config, setup_cpu_distributed,  # noqa: E402
                       teardown_distributed)
from mmengine.config import DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import sparseformer_mm  # noqa: E402,F401  (compat fixes, registries)
from sparseformer_mm.checkpoint_fit import (  # noqa: E402
    PARTIAL_HINT, CheckpointMismatchError, check_is_checkpoint)
from sparseformer_mm.datasets.checked_dataset import \
    path_problem  # noqa: E402
from sparseformer_mm.engine import checkpoint_to_load  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--dump', type=str,
                        help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--show-dir', help='directory for visualisations '
                        'of predictions (under the work dir)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--partial-load', action='store_true',
        help='load only the weights that fit the model (warns) instead of '
        'refusing a checkpoint that does not fit it')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def require_fit_check(cfg, partial: bool) -> None:
    """Make sure ``CheckpointLoadHook`` checks the checkpoint (configs that
    do not use our runtimes lack it); ``--partial-load`` relaxes it."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'CheckpointLoadHook' for h in hooks):
        hooks.append(dict(type='CheckpointLoadHook'))
    cfg.custom_hooks = hooks
    if partial:
        cfg.partial_load = True


def main():
    check_cfg_options()  # before argparse: an item without '=' crashes it
    args = parse_args()
    problem = path_problem(args.checkpoint)
    try:
        if problem is not None:
            raise ValueError(f'checkpoint {args.checkpoint}: {problem}')
        check_is_checkpoint(args.checkpoint)
    except ValueError as e:
        sys.exit(f'error: {e}')
    cfg = load_config(args)
    cfg.load_from = checkpoint_to_load(cfg.work_dir, args.checkpoint)
    cfg.resume = False
    require_fit_check(cfg, args.partial_load)
    if args.show_dir is not None:
        vis = cfg.default_hooks.setdefault(
            'visualization', dict(type='VisualizationHook'))
        vis['enable'] = True
        vis['out_dir'] = args.show_dir
    if args.dump is not None:
        assert args.dump.endswith(('.pkl', '.pickle')), \
            f'--dump must end with .pkl or .pickle, got {args.dump}'
        evaluator = cfg.test_evaluator
        if not isinstance(evaluator, (list, tuple)):
            evaluator = [evaluator]
        cfg.test_evaluator = list(evaluator) + [
            dict(type='DumpResults', out_file_path=args.dump)]
    setup_cpu_distributed(cfg)  # no-op with GPUs or without a launcher
    runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
              Runner.from_cfg(cfg))
    try:
        metrics = runner.test()
    except CheckpointMismatchError as e:
        msg = str(e).replace(PARTIAL_HINT['runner'], PARTIAL_HINT['test'])
        sys.exit(f'error: {msg}')
    if is_main_process():  # every rank gets the metrics; print them once
        print('test metrics: ' + ', '.join(
            f'{k}={v:.4f}' if isinstance(v, float) else f'{k}={v}'
            for k, v in metrics.items()))
    teardown_distributed()


if __name__ == '__main__':
    main()
