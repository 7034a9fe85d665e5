"""Command-line plumbing shared by tools/train.py and tools/test.py."""
import os.path as osp

from mmengine.config import Config


def load_config(args) -> Config:
    """Read ``args.config`` and fold in the options both tools share:
    ``--cfg-options``, ``--launcher`` and ``--work-dir`` (default
    ``./work_dirs/<config name>``), as mmaction2's tools do."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg
