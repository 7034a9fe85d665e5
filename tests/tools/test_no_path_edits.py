"""No script or module under tools/ or projects/ edits the module search
path: a script imports the modules beside it by plain name (its folder is
searched first), project drivers run as modules from the repository root,
and tests import through pytest.ini's ``pythonpath``."""
import ast
import glob
import os.path as osp

from data_helpers import REPO


def _path_edits(path):
    """``file:line`` of each ``sys.path`` change (a call of one of its
    methods, an assignment to it) or ``site.addsitedir`` call."""
    tree = ast.parse(open(path).read(), filename=path)
    found = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func,
                                                     ast.Attribute):
            target = node.func.value
            if ast.unparse(node.func) == 'site.addsitedir':
                found.append(node.lineno)
                continue
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [
                node.target]
            target = next((t for t in targets
                           if ast.unparse(t).startswith('sys.path')), None)
        if target is not None and ast.unparse(target) == 'sys.path':
            found.append(node.lineno)
    return [f'{osp.relpath(path, REPO)}:{line}' for line in found]


def test_the_check_sees_a_path_edit(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import sys\nsys.path.insert(0, "x")\nsys.path += ["y"]\n'
                   'import site\nsite.addsitedir("z")\nprint(sys.path[0])\n')
    assert sorted(e.rsplit(':', 1)[1] for e in _path_edits(str(bad))) == [
        '2', '3', '5']


def test_no_sys_path_edits_in_tools_or_projects():
    files = [p for folder in ('tools', 'projects') for p in glob.glob(
        osp.join(REPO, folder, '**', '*.py'), recursive=True)]
    assert len(files) > 20, files
    edits = [e for p in files for e in _path_edits(p)]
    assert not edits, ('import siblings by plain name, run drivers as '
                       f'modules, or move shared code: {edits}')
