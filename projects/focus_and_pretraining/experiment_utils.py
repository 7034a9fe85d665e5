"""What the demo experiments share (this project's, and those of
``projects/full_frame_views`` and ``projects/bootstrapping``, which import
it as ``projects.focus_and_pretraining.experiment_utils``): the repository
root, the generated data sets, and the steps every experiment takes with a
demo config (its cosine cut to fewer epochs, video data pointed at a
generated folder, a training that returns its checkpoint)."""
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Optional, Sequence, Tuple, Union

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA_TOOLS = osp.join(REPO, 'tools', 'data')


class Laps(dict):
    """Seconds of each step of a run, ``{name: seconds}`` (JSON as is)."""

    def __init__(self):
        super().__init__()
        self.start = self.last = time.time()

    def lap(self, name: str, since_start: bool = False) -> None:
        """Record the seconds since the last lap (or since the start)."""
        now = time.time()
        self[name] = round(now - (self.start if since_start else self.last),
                           1)
        self.last = now


def start_run(args) -> Tuple[str, str]:
    """What an experiment's ``main`` starts with: the package's registries,
    ``args.threads`` torch threads (if given), ``args.out`` made; returns it
    (absolute) and the data root: ``args.data_root``, else ``OUT/data`` with
    ``args.quick``, else ``data/demo``, where ``make demo`` writes."""
    import torch

    import sparseformer_mm  # noqa: F401  (compat fixes, registries)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    data_root = args.data_root or (osp.join(out, 'data') if args.quick else
                                   osp.join(REPO, 'data', 'demo'))
    return out, data_root


def _generate(script: str, args: list) -> None:
    """Run ``tools/data/<script>`` as ``make demo`` does (it keeps a data
    set that is already there)."""
    cmd = [sys.executable, osp.join(DATA_TOOLS, script)] + [str(a)
                                                            for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stderr[-3000:]}')


def make_shapes(root: str, num_train: int = 1000, num_val: int = 100,
                radius: Optional[Sequence[int]] = None) -> str:
    """The shapes images at ``root`` (``tools/data/make_synthetic_images.py``
    with its defaults, seed 0), unless already there; ``radius``: the
    objects' half-size range in pixels."""
    if not osp.isdir(osp.join(root, 'val')):
        _generate('make_synthetic_images.py',
                  [root, '--num-train', num_train, '--num-val', num_val] +
                  (['--radius', *radius] if radius else []))
    return root


def make_motion(root: str, num_train: int = 150, num_val: int = 30,
                size: Union[int, Sequence[int]] = 64) -> str:
    """The motion clips at ``root`` (``tools/data/make_synthetic_videos.py``
    with its defaults, seed 0), unless already there; ``size``: a side, or
    ``(width, height)``."""
    if not osp.isfile(osp.join(root, 'kinetics400_val_list_videos.txt')):
        size = size if isinstance(size, int) else 'x'.join(map(str, size))
        _generate('make_synthetic_videos.py',
                  [root, '--num-train', num_train, '--num-val', num_val,
                   '--size', size])
    return root


def fit_cosine(cfg, epochs: int, t_max: bool = False) -> None:
    """Cut a demo schedule (a warm-up, then one cosine) to ``epochs``: the
    warm-up alone for one epoch, else the cosine ending at ``epochs`` (and
    its ``T_max`` fitted to its new length with ``t_max``)."""
    warmup, cosine = cfg.param_scheduler
    if epochs <= 1:
        cfg.param_scheduler = [warmup]
    else:
        cosine.end = epochs
        if t_max:
            cosine.T_max = epochs - cosine.begin
    cfg.train_cfg.max_epochs = epochs


def point_video_data(cfg, root: str) -> None:
    """Train on ``root``'s training list, validate and test on its val
    (the layout ``tools/data/make_synthetic_videos.py`` writes)."""
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        ds = cfg[loader].dataset
        ds.ann_file = osp.join(root, f'kinetics400_{split}_list_videos.txt')
        ds.data_prefix = dict(video=osp.join(root, f'videos_{split}'))


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint of a finished run in ``work_dir`` (the one a
    ``--resume`` there would load)."""
    from sparseformer_mm.engine import checkpoint_to_load
    path = checkpoint_to_load(work_dir, resume=True)
    if path is None:
        raise FileNotFoundError(f'{work_dir} holds no last_checkpoint: the '
                                'run saved no checkpoint')
    return path


def train(cfg) -> str:
    """Train with mmengine's Runner; return the last checkpoint's path."""
    from mmengine.runner import Runner
    Runner.from_cfg(cfg).train()
    return last_checkpoint(cfg.work_dir)
