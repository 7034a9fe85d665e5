"""Which Python has the training stack: the tools' guard against running
with a Python that lacks it (e.g. a new shell after ``make install``, whose
stack is in ``.venv/``).

* ``tools/train.py`` and ``tools/test.py`` call :func:`require_stack` before
  importing torch: with the wrong Python they print the command to run
  instead of a ``No module named 'torch'`` traceback.
* The shell launchers (``dist_launch.sh``, ``slurm_launch.sh``) run this file
  with ``$PYTHON`` (default ``python``): it prints the Python to launch with,
  that one when it has the stack, else ``.venv/bin/python`` when that has
  it, else it says what to run first and exits 1.

Standard library only: it must run where torch is missing.
"""
import importlib.util
import os.path as osp
import shlex
import subprocess
import sys

REQUIRED = ('torch', 'mmengine', 'sparseformer_mm')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VENV = osp.join(REPO, '.venv')
VENV_PYTHON = osp.join(VENV, 'bin', 'python')


def missing_modules() -> list:
    """The required modules this Python cannot import (not imported here)."""
    return [name for name in REQUIRED
            if importlib.util.find_spec(name) is None]


def _venv_has_stack() -> bool:
    """Whether ``.venv/bin/python`` exists and can import the stack."""
    if not osp.isfile(VENV_PYTHON):
        return False
    return subprocess.run([VENV_PYTHON, __file__, '--check']).returncode == 0


def _short(path: str) -> str:
    rel = osp.relpath(path)
    return rel if not rel.startswith('..') else path


def advice(command: str = '') -> str:
    """What to run instead, when this Python lacks the stack."""
    head = (f"This Python ({sys.executable}) cannot import "
            f"{', '.join(missing_modules())}.")
    activate = _short(osp.join(VENV, 'bin', 'activate'))
    if _venv_has_stack():
        lines = [head, "The project's environment is .venv/. Run:",
                 f'  {_short(VENV_PYTHON)} {command or "..."}',
                 f'or first: source {activate}']
    else:
        lines = [head, f'Create the environment first: make install '
                 f'(in {REPO}), then: source {activate}'
                 + (f' and run: python {command}' if command else ''),
                 'or install the stack into this Python (README, Install).']
    return '\n'.join(lines)


def require_stack() -> None:
    """Exit with :func:`advice` for this command line when this Python lacks
    the stack; do nothing otherwise."""
    if missing_modules():
        sys.exit('error: ' + advice(shlex.join(sys.argv)))


def main() -> int:
    """``--check``: exit 0 when this Python has the stack. Otherwise print
    the Python the launchers should use, or exit 1 saying what to run."""
    if sys.argv[1:] == ['--check']:
        return 1 if missing_modules() else 0
    if not missing_modules():
        print(sys.executable)
        return 0
    if _venv_has_stack():
        print(f'note: {sys.executable} cannot import '
              f"{', '.join(missing_modules())}; using {VENV_PYTHON}",
              file=sys.stderr)
        print(VENV_PYTHON)
        return 0
    print('error: ' + advice(), file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
