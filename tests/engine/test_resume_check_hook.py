"""ResumeCheckHook in real Runner resumes: a new learning rate in the config
wins over the checkpoint's (the NaN error's advice), an unchanged one
changes nothing, and a missing resume path is named."""
import shutil

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import Dataset

from toy_models import TinyRegressor


class Points(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([i / 8, 1.0]),
                    labels=torch.tensor([0.5]))


class RecordLR(Hook):
    def __init__(self):
        self.lrs = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs[runner.iter] = runner.optim_wrapper.get_lr()['lr'][0]


def _runner(work_dir, lr, max_iters, hooks=(), resume=False, load_from=None):
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Points(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                 end=2),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=8,
                 eta_min=0)],
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook',
                                           interval=3, by_epoch=False)),
        custom_hooks=list(hooks), resume=resume, load_from=load_from,
        log_level='WARNING')


def _resumed_lrs(trained, lr, hooks):
    """The lrs of iterations 4-6 of a resume of a copy of ``trained``."""
    work_dir = trained.parent / f'resume{len(list(trained.parent.iterdir()))}'
    shutil.copytree(trained, work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_3.pth'))
    rec = RecordLR()
    _runner(work_dir, lr, 6, hooks=[*hooks, rec], resume=True).train()
    return [rec.lrs[i] for i in (3, 4, 5)]


def test_resume_takes_the_config_lr(tmp_path):
    tmp_path = tmp_path / 'trained'
    _runner(tmp_path, 0.1, 3).train()  # iter_3.pth at lr 0.1
    # mmengine alone: the saved optimizer state wins over lr=0.01
    saved = _resumed_lrs(tmp_path, 0.01, [])
    assert saved[0] > 0.05
    # the hook: the same schedule, at a tenth
    new = _resumed_lrs(tmp_path, 0.01, [dict(type='ResumeCheckHook')])
    assert new == pytest.approx([v / 10 for v in saved], rel=1e-6)
    # an unchanged lr changes nothing (bit for bit)
    same = _resumed_lrs(tmp_path, 0.1, [dict(type='ResumeCheckHook')])
    assert same == saved
    # and config_lr=False keeps mmengine's behaviour
    off = _resumed_lrs(tmp_path, 0.01,
                       [dict(type='ResumeCheckHook', config_lr=False)])
    assert off == saved


def test_missing_resume_path_is_named(tmp_path):
    _runner(tmp_path, 0.1, 3).train()
    runner = _runner(tmp_path, 0.1, 6, hooks=[dict(type='ResumeCheckHook')],
                     resume=True, load_from=str(tmp_path / 'gone.pth'))
    with pytest.raises(FileNotFoundError) as info:
        runner.train()
    msg = str(info.value)
    assert f'{tmp_path / "gone.pth"} (--resume PATH / load_from) does not ' \
        'exist' in msg
    assert f'The newest checkpoint in {tmp_path} is ' \
        f'{tmp_path / "iter_3.pth"}' in msg
