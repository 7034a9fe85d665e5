"""Run an image or video SparseFormer classifier and keep its trace.

The pictures must show what the backbone saw, so inputs go through the
config's own test (or val) pipeline and the model's data preprocessor, and
the displayed input is the preprocessed tensor, de-normalised.
"""
import warnings
from typing import Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import load_checkpoint
from torch import nn

from ..checkpoint_fit import (CheckpointMismatchError, checkpoint_fit_error,
                              without_partial_hint)
from ..datasets.checked_dataset import path_problem
from ..utils.model_utils import unwrap_model

# Extensions taken for videos: an image config refuses such an input.
VIDEO_EXTS = ('.mp4', '.webm', '.mkv', '.avi')


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               partial: bool = False) -> nn.Module:
    """Build an ``ImageClassifier`` / ``Recognizer3D`` from a config.

    Weights are loaded with mmengine's ``load_checkpoint`` (weights-only:
    ``sparseformer_mm.compat``), strictly: a checkpoint that does not fit
    the model (another arch or ``replicates``, an image checkpoint for a
    video config, another number of classes) raises
    :class:`~sparseformer_mm.checkpoint_fit.CheckpointMismatchError`
    saying what to set. A video backbone's ``pretrained`` image checkpoint
    is not read: the weights come from ``checkpoint``. The returned model
    is in eval mode and carries the config as ``model.cfg``.

    Args:
        config (str | Config): config file or object.
        checkpoint (str, optional): ``.pth`` file with a ``state_dict``
            (as saved by the Runner); ``None`` keeps random weights.
        device (str): e.g. ``'cpu'`` or ``'cuda:0'``. Defaults to 'cpu'.
        partial (bool): load only the weights that fit (with a warning)
            instead of raising. Defaults to False.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    scope = cfg.get('default_scope')
    if scope not in ('mmpretrain', 'mmaction'):
        raise ValueError(f'default_scope of the config is {scope!r}; '
                         "expected 'mmpretrain' (images) or 'mmaction' "
                         '(video)')
    if cfg.get('data_preprocessor') is not None:
        # mmpretrain configs keep it at the top level (as its init_model)
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if cfg.model.get('backbone', {}).get('pretrained'):
        cfg.model.backbone.pretrained = None
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        problem = path_problem(checkpoint)
        if problem is not None:
            raise FileNotFoundError(f'checkpoint {checkpoint}: {problem}')
        try:
            msg = checkpoint_fit_error(model, checkpoint, 'api')
        except ValueError as e:  # not a checkpoint at all
            raise CheckpointMismatchError(str(e)) from None
        if msg is not None:
            if not partial:
                raise CheckpointMismatchError(msg)
            warnings.warn(without_partial_hint(msg) + ' Loading only the '
                          'weights that fit (partial=True).')
        load_checkpoint(model, checkpoint, map_location='cpu',
                        strict=not partial, logger='silent')
    model.cfg = cfg
    return model.to(device).eval()


def _sample_name(packed: dict) -> str:
    meta = getattr(packed.get('data_samples'), 'metainfo', {}) or {}
    for key in ('filename', 'img_path'):
        if meta.get(key):
            return str(meta[key])
    return '<sample>'


def _backbone(model: nn.Module) -> nn.Module:
    model = unwrap_model(model)
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'num_total_tokens'):
        raise TypeError(f'{type(model).__name__} has no SparseFormer '
                        'backbone (model.backbone must be a SparseFormer or '
                        'VideoSparseFormer) to trace')
    return backbone


def is_video_model(model: nn.Module) -> bool:
    """Whether the model's backbone works on clips (3-D tubes)."""
    return getattr(_backbone(model), 'ndim', 2) == 3


def load_input(cfg: Config, path: str, split: str = 'test') -> dict:
    """Run an image or video file through the config's ``split`` pipeline.

    Args:
        cfg (Config): the model's config.
        path (str): an image file, or a video file (decord).
        split (str): ``'test'`` or ``'val'``: whose dataloader pipeline to
            use. Defaults to 'test'.

    Returns:
        dict: the packed sample (``inputs``, ``data_samples``).
    """
    problem = path_problem(path)
    if problem is not None:
        raise FileNotFoundError(f'input {path}: {problem}')
    loader = cfg.get(f'{split}_dataloader') or {}
    pipeline = (loader.get('dataset') or {}).get('pipeline') \
        or cfg.get(f'{split}_pipeline')
    if not pipeline:
        raise KeyError(f'the config has no {split}_dataloader.dataset.'
                       f'pipeline (nor {split}_pipeline) to preprocess '
                       f'{path} with')
    scope = cfg.get('default_scope')
    if scope == 'mmaction':
        data = dict(filename=path, label=-1, start_index=0, modality='RGB')
    else:
        if path.lower().endswith(VIDEO_EXTS):
            raise ValueError(f'{path} looks like a video but the config is an '
                             'image (mmpretrain) one')
        data = dict(img_path=path)
    with DefaultScope.overwrite_default_scope(scope):
        return Compose(pipeline)(data)


def warn_non_finite(inputs: torch.Tensor, name: str) -> bool:
    """Warn (naming the input) when a preprocessed input holds NaN or Inf
    values: every score computed from it is NaN, and the "prediction" is
    label 0. Returns whether it did."""
    bad = ~torch.isfinite(inputs)
    if not bool(bad.any()):
        return False
    warnings.warn(
        f'input {name} has {int(bad.sum())} non-finite value(s) (NaN / Inf) '
        f'of {inputs.numel()} after preprocessing: the scores are NaN and '
        'the predicted label is meaningless. Check the file (a float image '
        'with NaN pixels?) and the pipeline.')
    return True


@torch.no_grad()
def predict(model: nn.Module, path: str, split: str = 'test'):
    """Classify one image or video file with a model from
    :func:`init_model`, through the config's ``split`` pipeline.

    Warns when the preprocessed input (or the scores) are not finite.

    Returns:
        The data sample with ``pred_score`` (and ``pred_label``).
    """
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('model.cfg is missing; build the model with '
                             'sparseformer_mm.visualization.init_model')
    model = unwrap_model(model)
    data = model.data_preprocessor(pseudo_collate([load_input(cfg, path,
                                                              split)]),
                                   False)
    warned = warn_non_finite(data['inputs'], path)
    sample = model(**data, mode='predict')[0]
    score = sample.pred_score
    if not warned and not bool(torch.isfinite(score).all()):
        warnings.warn(f'the scores for {path} are not finite (NaN / Inf) '
                      'although its input is: the weights are broken '
                      '(e.g. from a diverged training).')
    return sample


def _display(pre: nn.Module, x: torch.Tensor, image_model: bool) -> np.ndarray:
    """De-normalise one preprocessed input ``(C, [T,] H, W)`` to uint8 RGB
    ``([T,] H, W, 3)``."""
    x = x.detach().float()
    if getattr(pre, '_enable_normalize', False):
        x = x * pre.std.to(x.device) + pre.mean.to(x.device)
    if image_model and not getattr(pre, 'to_rgb', True):
        # LoadImageFromFile reads BGR and the model kept that order
        x = x.flip(0)
    x = x.clamp(0, 255).round().to(torch.uint8).cpu()
    return np.ascontiguousarray(x.movedim(0, -1).numpy())


@torch.no_grad()
def trace_model_input(model: nn.Module,
                      packed: dict,
                      view: int = 0) -> Tuple[dict, np.ndarray]:
    """Preprocess one packed sample, run the backbone and keep its trace.

    Args:
        model (nn.Module): an ``ImageClassifier`` or ``Recognizer3D`` with a
            SparseFormer backbone (a DDP wrapper is unwrapped).
        packed (dict): a pipeline output (``inputs``, ``data_samples``), e.g.
            ``dataset[i]`` or :func:`load_input`.
        view (int): for a video, which of the sample's clips / crops to
            trace. Defaults to 0.

    Returns:
        tuple: ``(trace, display)``: the backbone trace (batch of one) and
        the input it saw as uint8 RGB, ``(H, W, 3)`` or ``(T, H, W, 3)``.
    """
    model = unwrap_model(model)
    backbone = _backbone(model)
    was_training = model.training
    model.eval()
    try:
        data = model.data_preprocessor(pseudo_collate([packed]), False)
        inputs = data['inputs']
        if backbone.ndim == 3:
            if inputs.dim() == 6:  # (B, views, C, T, H, W)
                if not 0 <= view < inputs.shape[1]:
                    raise IndexError(f'view {view} out of range: the sample '
                                     f'has {inputs.shape[1]} clips/crops')
                inputs = inputs[:, view]
        inputs = inputs[:1]
        warn_non_finite(inputs, _sample_name(packed))
        trace = backbone(inputs, return_trace=True)
    finally:
        model.train(was_training)
    display = _display(model.data_preprocessor, inputs[0],
                       image_model=backbone.ndim == 2)
    return trace, display


def trace_file(model: nn.Module,
               path: str,
               split: str = 'test',
               view: int = 0) -> Tuple[dict, np.ndarray]:
    """:func:`load_input` + :func:`trace_model_input` for a model built by
    :func:`init_model` (it needs ``model.cfg``)."""
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('model.cfg is missing; build the model with '
                             'sparseformer_mm.visualization.init_model')
    return trace_model_input(model, load_input(cfg, path, split), view)
