"""Classification head for VideoSparseFormer in mmaction2."""
from mmaction.models.heads import TimeSformerHead
from mmaction.registry import MODELS


@MODELS.register_module()
class SparseFormerHead(TimeSformerHead):
    """Dropout -> Linear on pooled tokens ``(B, C)``; weight-compatible with
    the image head (``fc_cls`` holds mmpretrain's ``head.fc``).

    mmaction2's ``BaseHead`` averages the views of multi-clip / multi-crop
    testing according to ``average_clips`` (``'score'``, ``'prob'`` or None).

    Args:
        num_classes (int): number of classes.
        in_channels (int): token width.
        dropout_ratio (float): dropout before the Linear. Defaults to 0.
        init_std (float): std of the truncated-normal init. Defaults to 0.02.
        average_clips (str, optional): how test views are averaged.
            Defaults to 'prob'.
        **kwargs: other ``BaseHead`` arguments (``loss_cls``, ...).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 dropout_ratio: float = 0.0, init_std: float = 0.02,
                 average_clips: str = 'prob', **kwargs):
        super().__init__(num_classes, in_channels, init_std=init_std,
                         dropout_ratio=dropout_ratio,
                         average_clips=average_clips, **kwargs)

    def forward(self, x, **kwargs):
        # fp32 scores under autocast (a no-op in fp32): mmaction2's accuracy
        # turns them into numpy arrays, and numpy has no bfloat16
        return super().forward(x, **kwargs).float()
