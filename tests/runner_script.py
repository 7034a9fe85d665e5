"""What ``Runner.from_cfg(cfg).train()`` in a user's script amounts to, with
the options the train tools get in the entry-point tests (run as a script:
``python tests/runner_script.py CONFIG --work-dir DIR ...``)."""
import argparse

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    parser.add_argument('--work-dir')
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--no-validate', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir, cfg.resume = args.work_dir, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    Runner.from_cfg(cfg).train()
