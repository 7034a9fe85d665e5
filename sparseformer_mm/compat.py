"""Minimal, explicit fixes for defects of today's upstream stack.

``apply_all()`` runs on ``import sparseformer_mm``. One function per defect;
each is idempotent and says which upstream bug it works around. Nothing
else in the package changes an upstream module.
"""
import importlib.metadata
import importlib.util
import os.path as osp
import pickle
import sys
import types

import torch

_applied = set()


def _once(fn):
    def wrapper(*args, **kwargs):
        if fn.__name__ in _applied:
            return
        fn(*args, **kwargs)
        _applied.add(fn.__name__)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


# --------------------------------------------------------------------------
# 1. mmaction2 1.2.0 wheel lacks ``mmaction/models/localizers/drn``
#    (open-mmlab/mmaction2 issue 2714, fixed on main, never released), so
#    ``import mmaction.models`` raises ModuleNotFoundError.
# --------------------------------------------------------------------------
DRN_MODULES = ('mmaction.models.localizers.drn',
               'mmaction.models.localizers.drn.drn')


@_once
def fix_mmaction_missing_drn() -> None:
    """Register an empty stand-in for the missing DRN localizer package.

    DRN is a temporal-grounding localizer nothing here uses. If a wheel that
    does ship it is installed, nothing is changed.
    """
    if 'mmaction.models' in sys.modules:
        return
    spec = importlib.util.find_spec('mmaction')
    if spec is None or spec.origin is None:
        return
    # Look at the files: find_spec on the submodule would import the broken
    # ``mmaction.models`` package itself.
    if osp.isdir(osp.join(osp.dirname(spec.origin), 'models', 'localizers',
                          'drn')):
        return
    pkg = types.ModuleType(DRN_MODULES[0])
    pkg.__path__ = []
    mod = types.ModuleType(DRN_MODULES[1])

    class DRN:  # noqa: D401 - stand-in
        """Stand-in: the mmaction2 1.2.0 wheel does not ship DRN."""

        def __init__(self, *args, **kwargs):
            raise ImportError('DRN is missing from the mmaction2 1.2.0 wheel '
                              '(mmaction2 issue 2714); install mmaction2 from '
                              'source to use it.')

    mod.DRN = DRN
    pkg.drn = mod
    sys.modules[DRN_MODULES[0]] = pkg
    sys.modules[DRN_MODULES[1]] = mod


# --------------------------------------------------------------------------
# 2. mmengine 0.10.7 resolves ``mmaction::`` / ``mmpretrain::`` config bases
#    with ``pkg_resources``, which setuptools >= 82 no longer ships
#    (``mmengine.utils.package_utils``), so such bases fail to load.
# --------------------------------------------------------------------------
def is_installed(package: str) -> bool:
    """``importlib.metadata`` version of ``mmengine.utils.is_installed``."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def get_installed_path(package: str) -> str:
    """``importlib.metadata`` version of ``mmengine.utils.get_installed_path``.

    ``package`` is a distribution name (``mmaction2``) or a module name.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f'{package} is not installed')
        return osp.dirname(spec.origin)
    location = str(dist.locate_file(''))
    if osp.exists(osp.join(location, package)):
        return osp.join(location, package)
    top = (dist.read_text('top_level.txt') or '').split()
    if not top:
        raise ValueError(f'can not infer the module name of {package}')
    return osp.join(location, top[0])


@_once
def fix_mmengine_pkg_resources() -> None:
    """Point mmengine's package look-ups at ``importlib.metadata``."""
    import mmengine.config.config as config_mod
    import mmengine.utils as utils
    import mmengine.utils.package_utils as package_utils
    for mod in (package_utils, utils, config_mod):
        mod.is_installed = is_installed
        mod.get_installed_path = get_installed_path
    hub = sys.modules.get('mmengine.hub.hub')
    if hub is not None:
        hub.get_installed_path = get_installed_path


# --------------------------------------------------------------------------
# 3. mmengine 0.10.7 loads local checkpoints with a plain ``torch.load``
#    (``runner/checkpoint.py: load_from_local``); under torch >= 2.6's
#    ``weights_only=True`` default its own checkpoints no longer load
#    (``HistoryBuffer``, then numpy globals: open-mmlab/mmengine issue 1655).
#    The upstream proposal (PR 1650, unmerged) passes ``weights_only=False``,
#    which lets any downloaded file run code. Here every local checkpoint,
#    resumes included, loads weights-only with an allow-list of the inert
#    types mmengine's checkpoints hold.
# --------------------------------------------------------------------------
def _history_buffer_getattr(obj, name):
    """Stand-in for ``getattr`` while unpickling: HistoryBuffer pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``; nothing else
    may be looked up."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a weights-only load')


def mmengine_safe_globals() -> list:
    """The inert types in mmengine checkpoints (no code runs on load): the
    message hub's ``HistoryBuffer`` and numpy arrays, scalars and dtypes
    (metrics, seeds, numpy random states)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = [HistoryBuffer, np.ndarray, np.dtype,
               (_history_buffer_getattr, '__builtin__.getattr'),
               (_history_buffer_getattr, 'builtins.getattr')]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar]
    allowed += [type(np.dtype(t)) for t in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
        'uint8', 'uint16', 'uint32', 'uint64', 'bool')]
    return allowed


def load_weights_only(filename, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and mmengine's inert types.

    Raises:
        RuntimeError: naming the file and what to do when it holds anything
            else (e.g. pickled code objects).
    """
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except Exception as e:  # torch raises UnpicklingError wrapped variously
        if 'weights_only' not in str(e) and 'Unsupported global' not in str(e):
            raise
        raise RuntimeError(
            f'Refused to unpickle {filename}: it holds objects other than '
            f'tensors and plain data. Checkpoints load weights-only (only '
            f"tensors, plain data and mmengine's inert types), so a file "
            f'that would run code on loading is never opened. If you trust '
            f"the file, extract its weights (e.g. torch.save(ckpt"
            f"['state_dict'], ...)) in a Python session you control. "
            f'Original error: {e}') from e


def load_from_local(filename, map_location):
    """mmengine's local-path checkpoint loader, weights-only."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return load_weights_only(filename, map_location)


@_once
def fix_mmengine_weights_only_load() -> None:
    """Register :func:`load_from_local` as mmengine's loader of local
    paths (the scheme ``''``); URLs keep mmengine's loaders, which go
    through torch's own weights-only default."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)


def apply_all() -> None:
    """Apply every fix (idempotent)."""
    fix_mmaction_missing_drn()
    fix_mmengine_pkg_resources()
    fix_mmengine_weights_only_load()
