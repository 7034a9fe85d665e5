"""Image SparseFormer weights -> VideoSparseFormer weights.

The rules :class:`~.video_sparseformer.VideoSparseFormer` applies whenever
image weights are loaded into it (as mmaction2's ``SwinTransformer3D``
keeps ``inflate_weights``): the backbone-level ones here, each op's own in
its ``Op.inflate`` (``models/layers/unit.py``). Also the resampling of a
square token grid onto a ``token_grid`` and the whole-checkpoint inflation
``tools/model_converters/inflate_to_video.py`` writes.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

from torch import Tensor

from ...archs import STEM_WEIGHT, infer_arch
from ...checkpoint_formats import prefixed_state_dict
from ...checkpoint_safety import load_weights_only
from ..layers import (grid_init_rois, inflate_unit, resample_grid_rois,
                      tube_rois)

StateDict = Dict[str, Tensor]


def is_image_state_dict(sd: StateDict, prefix: str = '') -> bool:
    """Whether backbone weights (under ``prefix``) are an image model's."""
    conv = sd.get(prefix + STEM_WEIGHT)
    return conv is not None and conv.dim() == 4


def inflate_image_state_dict(state_dict: StateDict,
                             replicates: int) -> StateDict:
    """Image SparseFormer backbone weights -> VideoSparseFormer weights.

    Keys are backbone-level (no ``backbone.`` prefix). Following the
    reference: the stem conv gains a time axis of 1; per-token embeddings
    are repeated R times (replica-major; a shared embedding stays one row);
    replica k of each RoI gets the temporal segment ``[k/R, (k+1)/R]``;
    each unit's ops inflate their own weights (``Op.inflate``: point
    offsets ``(x, y)`` -> ``(x, y, 0)``, RoI deltas ``(x, y, w, h)`` ->
    ``(x, y, 0, w, h, 0)``, a temporal position encoding that starts at
    zero). Everything else is copied.
    """
    num_tokens = state_dict['initial_roi.weight'].shape[0]
    units: Dict[str, StateDict] = OrderedDict()
    out = OrderedDict()
    for key, value in state_dict.items():
        m = re.match(r'(layers\.\d+\.)(.+)', key)
        if m:
            units.setdefault(m.group(1), OrderedDict())[m.group(2)] = value
            continue
        if key == STEM_WEIGHT:
            value = value.unsqueeze(2)
        elif key == 'initial_embedding.weight':
            if value.shape[0] == num_tokens:
                value = value.repeat(replicates, 1)
        elif key == 'initial_roi.weight':
            value = tube_rois(value, replicates)
        out[key] = value
    for prefix, unit in units.items():
        for key, value in inflate_unit(unit).items():
            out[prefix + key] = value
    return out


def _is_square_grid(rois: Tensor, grid: Tuple[int, int]) -> bool:
    """Whether ``r x r`` RoIs (as many as ``grid`` holds) are nearer the
    square grid's initialisation than ``grid``'s (a checkpoint of the same
    token count may have been trained on either layout)."""
    n = rois.shape[0]
    square = (rois - grid_init_rois(n).to(rois)).abs().mean()
    wide = (rois - grid_init_rois(n, grid=grid).to(rois)).abs().mean()
    return bool(square < wide)


def token_grid_layout(state_dict: StateDict, grid: Optional[tuple]
                      ) -> Optional[str]:
    """Whether image weights must be resampled onto ``grid``: ``None`` when
    they load as they are (no grid; the grid's own count and layout), else
    why they are resampled (for the log).

    Weights of another token count are resampled (they must be a square
    grid). Weights of the grid's count that are a square ``r x r`` grid with
    ``grid != (r, r)`` are laid out either way: their RoIs say which (the
    layout whose initialisation they are nearer).
    """
    if grid is None:
        return None
    rois = state_dict['initial_roi.weight']
    n, (cols, rows) = rois.shape[0], grid
    r = int(round(n ** 0.5))
    if n != cols * rows:
        return f'its {n} tokens resampled onto {cols} x {rows}'
    if r * r != n or (cols, rows) == (r, r) or rois.shape[1] != 4:
        return None
    if _is_square_grid(rois.double(), (cols, rows)):
        return (f'its {n} RoIs lie on a square {r} x {r} grid (nearer its '
                f'initialisation than {cols} x {rows}\'s): resampled onto '
                f'{cols} x {rows}')
    return None


def resample_token_grid(state_dict: StateDict, grid: Tuple[int, int],
                        unit: float = 0.5) -> StateDict:
    """Image backbone weights with an ``r x r`` token grid -> a
    ``cols x rows`` grid (``grid``), for a model whose frames are not square.

    Each target token takes the embedding and the learned RoI of the source
    token nearest in grid position (:func:`~sparseformer_mm.models.layers.
    resample_grid_rois`), so a grid-initialised checkpoint becomes the grid
    initialisation of the new shape. A shared embedding (one row) is kept.
    Keys are backbone-level; other keys are copied.
    """
    roi = state_dict['initial_roi.weight']
    emb = state_dict['initial_embedding.weight']
    new_roi, source = resample_grid_rois(roi, grid, unit)
    out = OrderedDict(state_dict)
    out['initial_roi.weight'] = new_roi
    if emb.shape[0] == roi.shape[0]:
        out['initial_embedding.weight'] = emb[source]
    return out


def inflate_checkpoint(src: str, replicates: int) -> dict:
    """An image checkpoint (ours, or released / original weights) as an
    mmaction2 ``Recognizer3D`` checkpoint for VideoSparseFormer.

    The backbone is inflated (:func:`inflate_image_state_dict`); the neck's
    LayerNorm is kept and the image head becomes ``cls_head.fc_cls``.
    """
    sd = prefixed_state_dict(load_weights_only(src), src)
    backbone = {k[len('backbone.'):]: v for k, v in sd.items()
                if k.startswith('backbone.')}
    if not is_image_state_dict(backbone):
        raise ValueError(f'{src} is not an image SparseFormer checkpoint '
                         '(no 2-D backbone.feat_extractor.conv1.weight)')
    arch = infer_arch(backbone, src)
    out = OrderedDict(('backbone.' + k, v) for k, v in
                      inflate_image_state_dict(backbone, replicates).items())
    for k, v in sd.items():
        if k.startswith('neck.'):
            out[k] = v
        elif k.startswith('head.fc.'):
            out['cls_head.fc_cls.' + k[len('head.fc.'):]] = v
    meta = dict(arch=arch, replicates=replicates, source=str(src))
    return dict(meta=meta, state_dict=out)
