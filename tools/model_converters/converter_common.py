"""What the converter scripts beside this module share."""
import os.path as osp
import sys


def refuse_overwrite(src: str, dst: str) -> None:
    """Exit when the output would replace the input (its original weights
    would be lost if the conversion were wrong)."""
    same = (osp.samefile(src, dst) if osp.exists(src) and osp.exists(dst)
            else osp.abspath(src) == osp.abspath(dst))
    if same:
        sys.exit(f'error: the output {dst} is the input {src}; write the '
                 'converted checkpoint to another file (the original would '
                 'be overwritten).')
