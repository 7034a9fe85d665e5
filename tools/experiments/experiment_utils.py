"""What the experiment tools share: the repository root, the tool folders
they import from (``tools/`` is not a package), and the steps every
experiment takes with a config (its cosine cut to fewer epochs, video data
pointed at a generated folder, a training that returns its checkpoint)."""
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
for _folder in ('data', 'analysis_tools'):
    if osp.join(REPO, 'tools', _folder) not in sys.path:
        sys.path.insert(0, osp.join(REPO, 'tools', _folder))


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
    """The checkpoint mmengine's ``work_dir/last_checkpoint`` names."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(cfg) -> str:
    """Train with mmengine's Runner; return the last checkpoint's path."""
    from mmengine.runner import Runner
    Runner.from_cfg(cfg).train()
    return last_checkpoint(cfg.work_dir)
