"""Minimal, explicit fixes for defects of today's upstream stack.

``apply_all()`` runs on ``import sparseformer_mm``. One function per defect;
each is idempotent and says which upstream bug it works around.
"""
import importlib.metadata
import importlib.util
import os.path as osp
import sys
import types

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


def apply_all() -> None:
    """Apply every fix (idempotent)."""
    fix_mmaction_missing_drn()
    fix_mmengine_pkg_resources()
