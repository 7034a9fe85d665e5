"""What the package holds and how its modules import each other."""
import ast
import os
import os.path as osp

PKG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
               'sparseformer_mm')


def _modules():
    """``{dotted name: path}`` of every module in the package."""
    out = {}
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith('.py'):
                rel = osp.relpath(osp.join(root, f), osp.dirname(PKG))
                name = rel[:-3].replace(os.sep, '.')
                out[name[:-len('.__init__')] if name.endswith('__init__')
                    else name] = osp.join(root, f)
    return out


def _imports(name, path, modules):
    """Package modules ``name`` imports, at any level (functions too)."""
    is_pkg = path.endswith('__init__.py')
    base = name.split('.') if is_pkg else name.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = '.'.join(base[:len(base) - node.level + 1]
                               + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            targets = [mod] + [f'{mod}.{a.name}' for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    state = {}

    def visit(m, stack):
        state[m] = 'open'
        for n in sorted(graph[m]):
            if state.get(n) == 'open':
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError('import cycle: ' + ' -> '.join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 'done'

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # the edge that used to close a cycle: formats know no model
    assert not {m for m in graph['sparseformer_mm.checkpoint_formats']
                if m.startswith('sparseformer_mm.models')}


def test_package_holds_no_command_line_code():
    """Command-line helpers, data preparation and benchmarks live in
    tools/: no module of the package parses arguments or runs as a
    script."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(
                    node, ast.Import) else [node.module or '']
                if 'argparse' in mods or 'subprocess' in mods:
                    offenders.append(f'{name}: imports {mods}')
            if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                    and getattr(node.test.left, 'id', '') == '__name__':
                offenders.append(f'{name}: has a __main__ block')
    assert not offenders, offenders


def _is_hook_name(node) -> bool:
    """``'FooHook'``, ``type(h).__name__`` or a ``FooHook`` class name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.endswith('Hook')
    if isinstance(node, ast.Attribute) and node.attr == '__name__':
        return isinstance(node.value, ast.Call) and getattr(
            node.value.func, 'id', '') == 'type'
    name = getattr(node, 'id', getattr(node, 'attr', ''))
    return name.endswith('Hook') and name != 'Hook'


def test_components_keep_out_of_each_others_privates():
    """No module assigns a private attribute of another object (such as
    ``runner._load_from = ...``) or looks another hook up by its class or
    name, and no hook module imports another hook module: components meet
    only on mmengine's public seams."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(open(path).read())
        is_hook = '.engine.hooks.' in name and name.endswith('_hook')
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif (isinstance(node, ast.Call)
                  and getattr(node.func, 'id', '') == 'setattr'
                  and len(node.args) > 1
                  and isinstance(node.args[1], ast.Constant)
                  and str(node.args[1].value).startswith('_')):
                offenders.append(f'{name}:{node.lineno}: '
                                 f'{ast.unparse(node)}')
            for target in targets:
                for sub in ast.walk(target):
                    if (isinstance(sub, ast.Attribute)
                            and sub.attr.startswith('_')
                            and not sub.attr.startswith('__')
                            and getattr(sub.value, 'id', '') not in (
                                'self', 'cls')):
                        offenders.append(f'{name}:{node.lineno}: assigns '
                                         f'{ast.unparse(sub)}')
            if isinstance(node, ast.Compare) and any(
                    map(_is_hook_name, [node.left, *node.comparators])):
                offenders.append(f'{name}:{node.lineno}: compares with a '
                                 f'hook name: {ast.unparse(node)}')
            if (isinstance(node, ast.Call)
                    and getattr(node.func, 'id', '') == 'isinstance'
                    and len(node.args) == 2 and _is_hook_name(node.args[1])):
                offenders.append(f'{name}:{node.lineno}: {ast.unparse(node)}')
            if is_hook and isinstance(node, ast.ImportFrom) and (
                    node.module or '').endswith('_hook'):
                offenders.append(f'{name}:{node.lineno}: imports the hook '
                                 f'module {node.module}')
    assert not offenders, offenders
