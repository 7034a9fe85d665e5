"""A model and data small enough for real mmengine Runner runs of the
engine's hooks (``tests/engine``): what the hooks do does not depend on
them."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch.utils.data import Dataset


class TinyRegressor(BaseModel):
    """``y = fc(x)`` on 2-d inputs; the loss is the mean squared error."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=((out - labels) ** 2).mean())
        return out


class Points(Dataset):
    """Four samples ``x = (i / 8, 1)``, all with ``y = 0.5``."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([i / 8, 1.0]),
                    labels=torch.tensor([0.5]))
