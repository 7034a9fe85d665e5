"""SkipPretrainedOnLoadHook with a real mmengine Runner on a toy model.

The video demo resumed after its image checkpoint was deleted, through every
entry point, is in tests/tools/test_entry_points.py.
"""
import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel, BaseModule
from mmengine.runner import Runner

from sparseformer_mm.engine.hooks import clear_pretrained


class Backbone(BaseModule):
    """Loads ``pretrained`` in ``init_weights``, like VideoSparseFormer."""

    def __init__(self, pretrained=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.pretrained = pretrained
        self.fc = nn.Linear(2, 1)

    def init_weights(self):
        if self.pretrained:
            state = torch.load(self.pretrained, weights_only=True)
            self.load_state_dict(state)
        else:
            super().init_weights()


class ToyModel(BaseModel):

    def __init__(self, pretrained=None):
        super().__init__()
        self.backbone = Backbone(pretrained)

    def forward(self, inputs, mode='loss'):
        loss = self.backbone.fc(inputs).pow(2).mean()
        return dict(loss=loss) if mode == 'loss' else [loss]


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]))


def _runner(work_dir, pretrained, resume=False, load_from=None):
    return Runner(
        model=ToyModel(pretrained), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(), batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='SkipPretrainedOnLoadHook')],
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
    first = _runner(tmp_path / 'work', str(weights))
    first.train()
    assert first.model.backbone.pretrained == str(weights)  # from scratch
    weights.unlink()  # the image checkpoint is gone

    # a new run from that file still needs it, and says which file
    with pytest.raises(FileNotFoundError, match='image.pth'):
        _runner(tmp_path / 'new', str(weights)).train()

    resumed = _runner(tmp_path / 'work', str(weights), resume=True)
    resumed._train_loop['max_epochs'] = 3
    resumed.train()
    assert resumed.epoch == 3 and resumed.model.backbone.pretrained is None

    tuned = _runner(tmp_path / 'tuned', str(weights),
                    load_from=str(tmp_path / 'work' / 'epoch_3.pth'))
    tuned.train()
    assert tuned.model.backbone.pretrained is None


def test_resume_in_an_empty_work_dir_keeps_pretrained(tmp_path):
    weights = tmp_path / 'image.pth'
    torch.save(Backbone().state_dict(), weights)
    runner = _runner(tmp_path / 'work', str(weights), resume=True)
    runner.train()  # nothing to resume: a run from the pretrained weights
    assert runner.model.backbone.pretrained == str(weights)
