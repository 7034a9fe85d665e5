"""Pictures of the RoIs and sampling points of a few validation samples."""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop, EpochBasedTrainLoop

from ...visualization.inference import _backbone, trace_model_input


@HOOKS.register_module()
class RoIVisualizationHook(Hook):
    """After validation, draw what the SparseFormer looks at.

    For a few fixed validation samples it writes the pictures of
    :func:`sparseformer_mm.visualization.visualize_trace` (every sampling
    pass's RoIs and points, a sampling-density map and, for video, the tubes
    frame by frame as PNG and GIF) into
    ``{work_dir}/{out_dir}/epoch_{k}/`` (``iter_{k}`` for iteration-based
    training, ``val`` for a stand-alone validation). Works for image
    (mmpretrain) and video (mmaction2) models; in distributed runs only
    rank 0 computes and writes. Enable it with::

        custom_hooks = [dict(type='RoIVisualizationHook', num_samples=4)]

    Args:
        num_samples (int): evenly spaced validation samples to draw.
            Defaults to 4.
        indices (Sequence[int], optional): explicit dataset indices
            (overrides ``num_samples``).
        interval (int): draw after every ``interval``-th validation.
            Defaults to 1.
        out_dir (str): folder under ``work_dir``. Defaults to 'vis_rois'.
        scale (int, optional): integer upscale of the pictures; by default
            the short side becomes about 256 px.
        max_frames (int): frames per row in a video's passes grid.
            Defaults to 8.
        view (int): which clip / crop of a video sample to trace.
            Defaults to 0.
    """

    priority = 'LOW'

    def __init__(self,
                 num_samples: int = 4,
                 indices: Optional[Sequence[int]] = None,
                 interval: int = 1,
                 out_dir: str = 'vis_rois',
                 scale: Optional[int] = None,
                 max_frames: int = 8,
                 view: int = 0):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if indices is None and num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.num_samples = num_samples
        self.indices = None if indices is None else [int(i) for i in indices]
        self.interval = interval
        self.out_dir = out_dir
        self.scale = scale
        self.max_frames = max_frames
        self.view = view
        self._num_vals = 0

    def before_run(self, runner) -> None:
        _backbone(runner.model)  # fail early on a model without SparseFormer

    def _pick(self, length: int):
        if self.indices is not None:
            bad = [i for i in self.indices if not -length <= i < length]
            if bad:
                raise IndexError(f'RoIVisualizationHook indices {bad} are out '
                                 f'of range for a validation set of {length}')
            return [i % length for i in self.indices]
        n = min(self.num_samples, length)
        return sorted(set(np.linspace(0, length - 1, n).round().astype(int)
                          .tolist()))

    @staticmethod
    def _folder_name(runner) -> str:
        # the private attribute: the train_loop property would build a loop
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, EpochBasedTrainLoop):
            return f'epoch_{loop.epoch}'
        if isinstance(loop, BaseLoop):
            return f'iter_{loop.iter}'
        return 'val'

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._num_vals += 1
        if self._num_vals % self.interval or not is_main_process():
            return
        # Drawing (cv2, PIL) is loaded only by a run that draws.
        from ...visualization.roi_vis import visualize_trace
        dataset = runner.val_loop.dataloader.dataset
        out = osp.join(runner.work_dir, self.out_dir,
                       self._folder_name(runner))
        written = []
        for idx in self._pick(len(dataset)):
            trace, display = trace_model_input(runner.model, dataset[idx],
                                               view=self.view)
            written += visualize_trace(display, trace, out,
                                       prefix=f'sample_{idx}',
                                       scale=self.scale,
                                       max_frames=self.max_frames)
        runner.logger.info(f'RoIVisualizationHook: wrote {len(written)} '
                           f'pictures to {out}')
