"""CheckpointLoadHook in real Runner runs: the learning rate of a resume, the
backbone's ``pretrained`` file when a checkpoint loads, a ``Pretrained``
``init_cfg`` that would leave frozen weights random, a missing resume path.

Broken pointers and two runs through tools/train.py are in
tests/tools/test_work_dir_guards.py, the copied work dir in
tests/tools/test_kill_during_save.py, checkpoints that do not fit in
tests/tools/test_checkpoint_fit.py, the video demo resumed after its image
checkpoint was deleted (every entry point) in tests/tools/test_entry_points.py.
"""
import os.path as osp
import shutil

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import Runner

from sparseformer_mm.checkpoint_fit import CheckpointMismatchError
from sparseformer_mm.engine.hooks import clear_pretrained
from toy_models import Points, TinyRegressor


class RecordLR(Hook):
    def __init__(self):
        self.lrs = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs[runner.iter] = runner.optim_wrapper.get_lr()['lr'][0]


SCHEDULE = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=8,
         eta_min=0)]


class RepeatedPoints(Points):
    """``Points`` four times over: the same batches in the same order (no
    shuffling), but a run of up to 8 iterations never reaches the end of
    the dataloader, where mmengine's iteration loop sleeps 2 s."""

    def __len__(self):
        return 4 * super().__len__()

    def __getitem__(self, i):
        return super().__getitem__(i % super().__len__())


def _runner(work_dir, lr, max_iters, hooks=(), resume=False, load_from=None,
            schedule=SCHEDULE, paramwise=False):
    optim = dict(optimizer=dict(type='SGD', lr=lr, weight_decay=1e-4))
    if paramwise:  # one param group per parameter
        optim['paramwise_cfg'] = dict(bias_decay_mult=0.0)
    return Runner(
        model=TinyRegressor(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=RepeatedPoints(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=optim, param_scheduler=schedule,
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook',
                                           interval=3, by_epoch=False)),
        custom_hooks=list(hooks), resume=resume, load_from=load_from,
        log_level='INFO', experiment_name=f'{osp.basename(work_dir)}_{lr}_'
        f'{len(hooks)}_{len(schedule or [])}')


def _resumed_lrs(trained, lr, hooks, **kwargs):
    """The lrs of iterations 4-6 of a resume of a copy of ``trained``, and
    the resumed run's log."""
    work_dir = trained.parent / f'resume{len(list(trained.parent.iterdir()))}'
    shutil.copytree(trained, work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_3.pth'))
    rec = RecordLR()
    runner = _runner(work_dir, lr, 6, hooks=[*hooks, rec], resume=True,
                     **kwargs)
    runner.train()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    return [rec.lrs[i] for i in (3, 4, 5)], log


def test_resume_takes_the_config_lr(tmp_path):
    tmp_path = tmp_path / 'trained'
    _runner(tmp_path, 0.1, 3).train()  # iter_3.pth at lr 0.1
    # mmengine alone: the saved optimizer state wins over lr=0.01
    saved, _ = _resumed_lrs(tmp_path, 0.01, [])
    assert saved[0] > 0.05
    # the hook: the same schedule, at a tenth
    new, _ = _resumed_lrs(tmp_path, 0.01, [dict(type='CheckpointLoadHook')])
    assert new == pytest.approx([v / 10 for v in saved], rel=1e-6)
    # an unchanged lr changes nothing (bit for bit)
    same, _ = _resumed_lrs(tmp_path, 0.1, [dict(type='CheckpointLoadHook')])
    assert same == saved
    # and config_lr=False keeps mmengine's behaviour
    off, _ = _resumed_lrs(tmp_path, 0.01,
                          [dict(type='CheckpointLoadHook', config_lr=False)])
    assert off == saved


def test_resume_with_a_new_lr_and_no_schedule_trains_at_that_lr(tmp_path):
    """Issue 23 item 3: a schedule that jumped the lr 1e6x, resumed with
    ``optim_wrapper.optimizer.lr=1e-5 param_scheduler=[]``, trains at 1e-5
    (the base lr of the checkpoint is 1e-5 too: rescaling against it would
    keep the jumped lr), and the log says so in one line."""
    jump = [dict(type='MultiStepLR', by_epoch=False, milestones=[1],
                 gamma=1e6)]
    trained = tmp_path / 'trained'
    _runner(trained, 1e-5, 3, schedule=jump, paramwise=True).train()
    hook = [dict(type='CheckpointLoadHook')]
    without, _ = _resumed_lrs(trained, 1e-5, [], schedule=[], paramwise=True)
    assert without == pytest.approx([10.0] * 3)  # mmengine: the saved lr
    lrs, log = _resumed_lrs(trained, 1e-5, hook, schedule=[], paramwise=True)
    assert lrs == pytest.approx([1e-5] * 3, rel=1e-9)
    lines = [ln for ln in log.splitlines() if 'learning rate' in ln]
    assert len(lines) == 1, lines
    assert 'lr 10 -> 1e-05 in 2 param group(s)' in lines[0], lines[0]
    assert 'the config has no lr schedule' in lines[0]
    # resumed with the jump schedule and the same lr: as scheduled, silent
    lrs, log = _resumed_lrs(trained, 1e-5, hook, schedule=jump,
                            paramwise=True)
    assert lrs == pytest.approx([10.0] * 3)
    assert 'learning rate' not in log


def test_missing_resume_path_is_named(tmp_path):
    _runner(tmp_path, 0.1, 3).train()
    runner = _runner(tmp_path, 0.1, 6,
                     hooks=[dict(type='CheckpointLoadHook')],
                     resume=True, load_from=str(tmp_path / 'gone.pth'))
    with pytest.raises(FileNotFoundError) as info:
        runner.train()
    msg = str(info.value)
    assert f'{tmp_path / "gone.pth"} (--resume PATH / load_from) does not ' \
        'exist' in msg
    assert f'The newest checkpoint in {tmp_path} is ' \
        f'{tmp_path / "iter_3.pth"}' in msg


def test_copied_work_dir_resumes_its_own_file(tmp_path):
    """A copy's pointer names the original's file: the copy resumes from
    its own file of that name (the original is deleted here, so mmengine
    alone could not resume at all)."""
    _runner(tmp_path / 'a', 0.1, 3).train()
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    shutil.rmtree(tmp_path / 'a')
    with pytest.raises(Exception, match='iter_3.pth'):  # mmengine alone
        _runner(tmp_path / 'b', 0.1, 6, resume=True).train()
    runner = _runner(tmp_path / 'b', 0.1, 6, resume=True,
                     hooks=[dict(type='CheckpointLoadHook')])
    runner.train()
    assert runner.iter == 6
    assert (tmp_path / 'b' / 'last_checkpoint').read_text() == str(
        tmp_path / 'b' / 'iter_6.pth')
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert f'resuming from {tmp_path / "b" / "iter_3.pth"}' in log


# --------------------------------------------------------------------------
# The backbone's pretrained file (was SkipPretrainedOnLoadHook)
# --------------------------------------------------------------------------
class Backbone(BaseModule):
    """Loads ``pretrained`` in ``init_weights``, like VideoSparseFormer."""

    def __init__(self, pretrained=None, init_cfg=None, frozen=False):
        super().__init__(init_cfg=init_cfg)
        self.pretrained = pretrained
        self.fc = nn.Linear(2, 1)
        self.proj = nn.Linear(1, 1)
        self.proj.requires_grad_(not frozen)

    def init_weights(self):
        if self.pretrained:
            state = torch.load(self.pretrained, weights_only=True)
            self.load_state_dict(state)
        else:
            super().init_weights()


class ToyModel(BaseModel):

    def __init__(self, pretrained=None, init_cfg=None, frozen=False):
        super().__init__()
        self.backbone = Backbone(pretrained, init_cfg, frozen)

    def forward(self, inputs, mode='loss'):
        loss = self.backbone.proj(self.backbone.fc(inputs)).pow(2).mean()
        return dict(loss=loss) if mode == 'loss' else [loss]


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]))


def _toy_runner(work_dir, pretrained=None, resume=False, load_from=None,
                **model):
    return Runner(
        model=ToyModel(pretrained, **model), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='CheckpointLoadHook')],
        resume=resume, load_from=load_from,
        experiment_name=f'toy_{work_dir.parent.name}_{work_dir.name}_{resume}'
        f'_{bool(load_from)}')


def test_clear_pretrained_keeps_other_initialisers():
    model = nn.Module()
    model.a = Backbone('a.pth')
    model.b = Backbone(init_cfg=dict(type='Pretrained', checkpoint='b.pth'))
    model.c = Backbone(init_cfg=[
        dict(type='Kaiming', layer='Linear'),
        dict(type='Pretrained', checkpoint='c.pth')])
    cleared = clear_pretrained(model)
    assert cleared == ['a.pretrained=a.pth', 'b.init_cfg=b.pth',
                       'c.init_cfg=c.pth']
    assert model.a.pretrained is None and model.b.init_cfg is None
    assert model.c.init_cfg == [dict(type='Kaiming', layer='Linear')]
    assert clear_pretrained(model) == []


def test_resume_and_load_from_do_not_read_pretrained(tmp_path):
    weights = tmp_path / 'image.pth'
    torch.save(Backbone().state_dict(), weights)
    first = _toy_runner(tmp_path / 'work', str(weights))
    first.train()
    assert first.model.backbone.pretrained == str(weights)  # from scratch
    weights.unlink()  # the image checkpoint is gone

    # a new run from that file still needs it, and says which file
    with pytest.raises(FileNotFoundError, match='image.pth'):
        _toy_runner(tmp_path / 'new', str(weights)).train()

    resumed = _toy_runner(tmp_path / 'work', str(weights), resume=True)
    resumed._train_loop['max_epochs'] = 3
    resumed.train()
    assert resumed.epoch == 3 and resumed.model.backbone.pretrained is None

    tuned = _toy_runner(tmp_path / 'tuned', str(weights),
                        load_from=str(tmp_path / 'work' / 'epoch_3.pth'))
    tuned.train()
    assert tuned.model.backbone.pretrained is None


def test_resume_in_an_empty_work_dir_keeps_pretrained(tmp_path):
    weights = tmp_path / 'image.pth'
    torch.save(Backbone().state_dict(), weights)
    runner = _toy_runner(tmp_path / 'work', str(weights), resume=True)
    runner.train()  # nothing to resume: a run from the pretrained weights
    assert runner.model.backbone.pretrained == str(weights)


# --------------------------------------------------------------------------
# init_cfg=Pretrained must load what is frozen (issue 23 item 2)
# --------------------------------------------------------------------------
def test_pretrained_init_that_leaves_a_frozen_layer_random_stops(tmp_path):
    """mmengine's Pretrained init loads non-strictly: a file without the
    frozen ``proj`` would leave it random for the whole run."""
    partial = tmp_path / 'fc_only.pth'
    torch.save({'state_dict': {'fc.weight': torch.ones(1, 2),
                               'fc.bias': torch.zeros(1)}}, partial)
    init = dict(type='Pretrained', checkpoint=str(partial))
    runner = _toy_runner(tmp_path / 'work', init_cfg=init, frozen=True)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.train()
    msg = str(info.value)
    assert f"model.backbone.init_cfg=dict(type='Pretrained', checkpoint=" \
        f'{partial}) leaves 2 frozen or inherited parameter(s) unloaded ' \
        '(e.g. backbone.proj.' in msg, msg
    assert 'would stay random' in msg
    # a tuned (not frozen) layer may start from its default initialisation
    runner = _toy_runner(tmp_path / 'tuned', init_cfg=init)
    runner.train()
    # a file that holds the frozen layer too trains
    whole = tmp_path / 'whole.pth'
    torch.save({'state_dict': Backbone().state_dict()}, whole)
    _toy_runner(tmp_path / 'whole', frozen=True, init_cfg=dict(
        type='Pretrained', checkpoint=str(whole))).train()
    # and a missing file is named with its key
    with pytest.raises(CheckpointMismatchError,
                       match=r'model.backbone.init_cfg.checkpoint=\S*gone.pth'
                       r' does not exist'):
        _toy_runner(tmp_path / 'gone', frozen=True, init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'gone.pth'))).train()
