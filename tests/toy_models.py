"""A model small enough for real mmengine Runner runs of the engine's hooks
(``tests/engine``): what the hooks do does not depend on the model."""
import torch.nn as nn
from mmengine.model import BaseModel


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
