"""Checks of ``--cfg-options`` shared by tools/train.py and tools/test.py.

Not a package module: the scripts import it by plain name (a script's
folder is first on ``sys.path``). mmengine's ``DictAction`` crashes with a
bare ``ValueError`` on an item without ``=``, and ``merge_from_dict``
silently adds a top-level key nothing reads (a typo such as
``optim_wraper.optimizer.lr=1e-4`` trains with the old lr). Adding keys
is legitimate (a config may read them), so an unknown one is a warning.
"""
import difflib
import os.path as osp
import sys

# Top-level keys the Runner (Runner.from_cfg) or our components read even
# when a config does not set them.
RUNNER_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'runner_type', 'model_wrapper_cfg', 'partial_load'))
CONFIG_EXTS = ('.py', '.json', '.yaml', '.yml')


def _option_items(argv):
    """The values given after each ``--cfg-options`` in ``argv``."""
    items, on = [], False
    for tok in argv:
        if tok == '--cfg-options':
            on = True
        elif tok.startswith('--cfg-options='):
            on = True
            items.append(tok.split('=', 1)[1])
        elif tok.startswith('-') and not tok.lstrip('-')[:1].isdigit():
            on = False
        elif on:
            items.append(tok)
    return items


def unknown_keys(cfg, keys):
    """``[(key, suggestion or None)]`` for the keys whose top-level part is
    neither in ``cfg`` nor one the Runner reads."""
    known = set(cfg.keys()) | RUNNER_KEYS
    out = []
    for key in keys:
        top = key.split('.')[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=1)
            out.append((key, close[0] if close else None))
    return out


def check_cfg_options(argv=None):
    """Check the ``--cfg-options`` of the command line before argparse.

    Exits with a one-line error for an item without ``=``; warns for each
    key whose top-level part the config (the first ``.py`` / ``.json`` /
    ``.yaml`` file argument) does not have and the Runner does not read.
    """
    argv = sys.argv[1:] if argv is None else argv
    items = _option_items(argv)
    if not items:
        return
    bad = [x for x in items if '=' not in x]
    if bad:
        sys.exit(f'error: --cfg-options takes key=value pairs; got '
                 f'{bad[0]!r} without "=" (e.g. {bad[0]}=VALUE; a list: '
                 f'{bad[0]}="[a,b]")')
    config = next((a for a in argv if a.endswith(CONFIG_EXTS)
                   and osp.isfile(a)), None)
    if config is None:
        return
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(config)
    except Exception:  # noqa: BLE001  the tool itself reports a bad config
        return
    for key, close in unknown_keys(cfg, [x.split('=', 1)[0] for x in items]):
        hint = f" Did you mean '{close}'?" if close else ''
        print(
            f"warning: --cfg-options {key}: {config} has no top-level key "
            f"'{key.split('.')[0]}' and the Runner does not read one; it is "
            f'added to the config, but nothing may use it.{hint}',
            file=sys.stderr)
