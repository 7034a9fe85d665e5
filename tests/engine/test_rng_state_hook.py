"""RNGStateHook with a real mmengine Runner on a toy model (CPU, in-process).

The end-to-end check (SIGKILL mid-epoch, --resume, same weights) is in
tests/tools/test_crash_resume.py.
"""
import random

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from sparseformer_mm.engine.hooks import RNGStateHook
from sparseformer_mm.engine.hooks.rng_state_hook import epoch_seed


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)
        self.seen = []  # the batches' sample indices, in order

    def forward(self, inputs, idx, mode='loss'):
        x = inputs  # default_collate stacked them
        self.seen.append([int(i) for i in idx])
        loss = self.fc(nn.functional.dropout(x, 0.5)).pow(2).mean()
        return dict(loss=loss) if mode == 'loss' else [loss]


class ToyDataset(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', ))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        # np.random in the main process, like a random-flip transform.
        return dict(inputs=torch.tensor([float(i), np.random.rand()]), idx=i)


def _runner(work_dir, resume=False, seed=None, max_epochs=2):
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(), batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='RNGStateHook')],
        randomness=dict(seed=seed), resume=resume,
        experiment_name=f'toy_{work_dir.name}_{resume}')


def test_epoch_seed_depends_on_seed_epoch_and_rank_only():
    seeds = {epoch_seed(s, e, r) for s in range(3) for e in range(3)
             for r in range(3)}
    assert len(seeds) == 27  # seed + epoch would collide
    assert epoch_seed(5, 2, 1) == epoch_seed(5, 2, 1)
    assert 0 <= epoch_seed(5, 2, 1) < 2**32


def test_resume_without_seed_restores_data_order_and_seeds(tmp_path):
    # No seed given: each process draws its own, as with tools/train.py
    # without --seed. The resumed process must take the first one's seeds
    # (global and sampler) from the checkpoint instead of drawing new ones.
    first = _runner(tmp_path / 'b', max_epochs=1)
    first.train()
    resumed = _runner(tmp_path / 'b', resume=True)
    resumed.train()
    assert resumed.seed == first.seed  # mmengine takes it from meta
    # Epochs of 2 batches: the resumed run redid epoch 2 only.
    assert len(resumed.model.seen) == 2
    assert resumed.train_dataloader.sampler.seed == \
        first.train_dataloader.sampler.seed
    ckpt_b = torch.load(tmp_path / 'b' / 'epoch_2.pth', weights_only=False)
    assert ckpt_b['meta']['resume_seeds']['sampler'] == \
        first.train_dataloader.sampler.seed
    assert ckpt_b['meta']['seed'] == first.seed
    # (Weights equal to an unbroken run with the same seed: the next test.)


def test_same_seed_resume_is_bit_exact_in_process(tmp_path):
    unbroken = _runner(tmp_path / 'a', seed=3)
    unbroken.train()
    _runner(tmp_path / 'b', seed=3, max_epochs=1).train()
    # Whatever ran in between must not matter.
    random.random(), np.random.rand(7), torch.rand(5)
    resumed = _runner(tmp_path / 'b', seed=3, resume=True)
    resumed.train()
    assert resumed.model.seen == unbroken.model.seen[2:]
    for k, v in unbroken.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_load_from_does_not_take_the_old_runs_seeds(tmp_path):
    _runner(tmp_path / 'a', seed=3, max_epochs=1).train()
    runner = _runner(tmp_path / 'c', seed=4, max_epochs=1)
    runner._load_from = str(tmp_path / 'a' / 'epoch_1.pth')
    runner.train()
    assert runner.train_dataloader.sampler.seed == 4
    assert isinstance(runner._hooks[0], RNGStateHook)  # priority HIGHEST
