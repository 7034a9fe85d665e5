"""The modules of tools/model_converters/ as their scripts import them: by
plain name (a script's folder is first on its module search path).

Until pytest.ini's ``pythonpath`` names tools/model_converters, a test
loads them here from their files, registered under those names so that a
script loaded in-process finds its siblings.
"""
import importlib.util
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONVERTERS = osp.join(REPO, 'tools', 'model_converters')
SIBLINGS = ('converter_common', 'vit_import')


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(CONVERTERS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_module(name: str, fresh: bool = False):
    """``tools/model_converters/<name>.py`` as module ``name`` (the shared
    modules beside it loaded first); ``fresh``: executed again."""
    for sibling in SIBLINGS:
        if sibling not in sys.modules:
            _load(sibling)
    if name in sys.modules and not fresh:
        return sys.modules[name]
    return _load(name)
