"""Does SparseFormer look at the object? A foreground-focus metric.

For every image (or clip) with a known object box, the metric takes the trace
of the backbone (``backbone(x, return_trace=True)``: per sampling pass, the
RoIs and the absolute sampling points) and measures

* ``points_in``: the fraction of sampling points inside the object's box in
  the frame each point samples (a point outside the image, or outside the
  clip in time, counts as outside);
* ``roi_in``: the fraction of each RoI's area (tube volume for video), clipped
  to the image, that lies inside the box, averaged over tokens;
* ``chance``: the box's share of the frame (for video, averaged over the
  frames fed to the model): what uniformly spread points would score.

``lift = points_in / chance`` (ratios of means over the data set): 1 is
chance, 3 means points land on the object three times as often as chance.

Coordinate conventions (``sparseformer_mm/models/layers/roi_geometry.py``
and ``sampling.py`` there): RoIs are corners ``(x1, y1, x2, y2)`` or
``(x1, y1, t1, x2, y2, t2)`` and points ``(x, y[, t])``, all normalised to
[0, 1] over the model input, sampled by ``grid_sample`` with
``align_corners=False``. So ``x = 0`` is the left edge of pixel 0 and
``x = 1`` the right edge of the last pixel, and a point at ``t`` lies nearest
to the centre of frame ``floor(t * T)`` of a ``T``-frame clip (frame ``k``
spans ``[k/T, (k+1)/T]``). Boxes here are normalised the same way: a box of
inclusive pixels ``[x1, x2]`` covers ``[x1, x2 + 1] / W``.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

# ---------------------------------------------------------------------------
# Geometry on normalised coordinates (pure functions, tested on known answers)
# ---------------------------------------------------------------------------


def _as_frame_boxes(boxes: Tensor, ndim: int) -> Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if ndim == 2:
        if boxes.shape != (4, ):
            raise ValueError(f'an image needs one box (4,), got '
                             f'{tuple(boxes.shape)}')
    elif boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f'a clip needs one box per frame (T, 4), got '
                         f'{tuple(boxes.shape)}')
    return boxes.clamp(0, 1)


def t_to_frame(t: Tensor, num_frames: int) -> Tensor:
    """Index of the frame nearest to normalised time ``t`` in a clip of
    ``num_frames`` frames (``floor(t*T)``, clamped to the clip)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return (t * num_frames).floor().clamp(0, num_frames - 1).long()


def point_hits(points: Tensor, boxes: Tensor) -> Tensor:
    """Which sampling points fall inside the object's box.

    Args:
        points (Tensor): ``(..., ndim)`` normalised ``(x, y)`` or
            ``(x, y, t)``.
        boxes (Tensor): normalised ``(x1, y1, x2, y2)``: ``(4,)`` for an
            image, ``(T, 4)`` (one per frame fed to the model) for a clip.

    Returns:
        Tensor: bool ``points.shape[:-1]``. Points outside ``[0, 1]`` on any
        axis (outside the image, or before/after the clip) are outside.
    """
    points = torch.as_tensor(points, dtype=torch.float64)
    ndim = points.shape[-1]
    boxes = _as_frame_boxes(boxes, ndim)
    in_volume = ((points >= 0) & (points <= 1)).all(dim=-1)
    if ndim == 3:
        box = boxes[t_to_frame(points[..., 2], boxes.shape[0])]
    else:
        box = boxes.expand(points.shape[:-1] + (4, ))
    x, y = points[..., 0], points[..., 1]
    in_box = ((x >= box[..., 0]) & (x <= box[..., 2])
              & (y >= box[..., 1]) & (y <= box[..., 3]))
    return in_volume & in_box


def _overlap(lo1, hi1, lo2, hi2):
    return (torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)).clamp(min=0)


def roi_box_overlap(rois: Tensor, boxes: Tensor) -> Tensor:
    """Fraction of each RoI (clipped to the image/clip) inside the box.

    Args:
        rois (Tensor): ``(..., 4)`` boxes or ``(..., 6)`` tubes, corners.
        boxes (Tensor): as :func:`point_hits`. For a tube, the box of frame
            ``k`` applies over the time slot ``[k/T, (k+1)/T]``.

    Returns:
        Tensor: ``rois.shape[:-1]`` fractions in [0, 1]; 0 for a RoI with no
        area inside the image.
    """
    rois = torch.as_tensor(rois, dtype=torch.float64)
    ndim = rois.shape[-1] // 2
    boxes = _as_frame_boxes(boxes, ndim)
    lo = torch.minimum(rois[..., :ndim], rois[..., ndim:]).clamp(0, 1)
    hi = torch.maximum(rois[..., :ndim], rois[..., ndim:]).clamp(0, 1)
    size = hi - lo
    area = size[..., 0] * size[..., 1]
    if ndim == 2:
        inter = (_overlap(lo[..., 0], hi[..., 0], boxes[0], boxes[2])
                 * _overlap(lo[..., 1], hi[..., 1], boxes[1], boxes[3]))
        whole = area
    else:
        T = boxes.shape[0]
        inter = torch.zeros_like(area)
        for k in range(T):
            b = boxes[k]
            dt = _overlap(lo[..., 2], hi[..., 2],
                          lo.new_tensor(k / T), lo.new_tensor((k + 1) / T))
            inter = inter + dt * (
                _overlap(lo[..., 0], hi[..., 0], b[0], b[2])
                * _overlap(lo[..., 1], hi[..., 1], b[1], b[3]))
        whole = area * size[..., 2]
    return torch.where(whole > 0, inter / whole.clamp(min=1e-12),
                       torch.zeros_like(whole))


def box_share(boxes: Tensor) -> float:
    """The chance level: the box's share of the frame (mean over frames)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    boxes = _as_frame_boxes(boxes, 2 if boxes.dim() == 1 else 3)
    boxes = boxes.reshape(-1, 4)
    area = ((boxes[:, 2] - boxes[:, 0]).clamp(min=0)
            * (boxes[:, 3] - boxes[:, 1]).clamp(min=0))
    return float(area.mean())


def sample_focus(passes: Sequence[dict], final_rois: Tensor,
                 boxes: Tensor) -> dict:
    """Focus numbers of one image/clip from its trace.

    Args:
        passes (Sequence[dict]): per sampling pass, ``rois`` ``(N, 2*ndim)``
            and ``points`` ``(N, P, ndim)`` of this sample.
        final_rois (Tensor): ``(N, 2*ndim)`` RoIs after the last adjustment.
        boxes (Tensor): normalised boxes, see :func:`point_hits`.

    Returns:
        dict: ``chance``, ``final_roi_in`` and ``passes`` (one dict per pass
        with ``points_in``, ``roi_in`` and ``best_token_points_in``, the
        largest per-token fraction of points inside the box).
    """
    out = []
    for p in passes:
        hits = point_hits(p['points'], boxes).double()
        out.append(dict(points_in=float(hits.mean()),
                        best_token_points_in=float(hits.mean(-1).max()),
                        roi_in=float(roi_box_overlap(p['rois'],
                                                     boxes).mean())))
    return dict(chance=box_share(boxes), passes=out,
                final_roi_in=float(roi_box_overlap(final_rois, boxes).mean()))


def summarize_focus(samples: Sequence[dict]) -> dict:
    """Data-set means of :func:`sample_focus` results, with lifts over
    chance (ratio of means), per pass, for the last pass and averaged over
    passes."""
    if not samples:
        raise ValueError('no samples to summarise')
    chance = float(np.mean([s['chance'] for s in samples]))
    num_passes = len(samples[0]['passes'])
    keys = ('points_in', 'roi_in', 'best_token_points_in')
    passes = []
    for i in range(num_passes):
        row = {k: float(np.mean([s['passes'][i][k] for s in samples]))
               for k in keys}
        row['points_lift'] = row['points_in'] / chance
        row['roi_lift'] = row['roi_in'] / chance
        passes.append(row)
    mean = {k: float(np.mean([p[k] for p in passes]))
            for k in keys + ('points_lift', 'roi_lift')}
    final_roi_in = float(np.mean([s['final_roi_in'] for s in samples]))
    return dict(num_samples=len(samples), chance=chance, passes=passes,
                last_pass=dict(passes[-1]), mean_over_passes=mean,
                final_roi_in=final_roi_in,
                final_roi_lift=final_roi_in / chance)


def format_focus_table(summary: dict, title: str = '') -> str:
    """A printable table of :func:`summarize_focus` output."""
    lines = []
    if title:
        lines.append(title)
    lines.append(f"{summary['num_samples']} samples, chance (box share of "
                 f"the frame) = {summary['chance']:.4f}")
    head = (f"{'pass':>6} {'points_in':>10} {'lift':>6} {'roi_in':>8} "
            f"{'lift':>6} {'best_token':>10}")
    lines += [head, '-' * len(head)]
    rows = [(str(i + 1), p) for i, p in enumerate(summary['passes'])]
    rows.append(('mean', summary['mean_over_passes']))
    for name, p in rows:
        lines.append(f"{name:>6} {p['points_in']:>10.4f} "
                     f"{p['points_lift']:>5.2f}x {p['roi_in']:>8.4f} "
                     f"{p['roi_lift']:>5.2f}x "
                     f"{p['best_token_points_in']:>10.4f}")
    lines.append(f"final RoIs: {summary['final_roi_in']:.4f} of their area "
                 f"on the object ({summary['final_roi_lift']:.2f}x chance)")
    return '\n'.join(lines)


# ---------------------------------------------------------------------------
# Boxes through a data pipeline
# ---------------------------------------------------------------------------


def _hw(results: dict) -> Optional[Tuple[int, int]]:
    shape = results.get('img_shape')
    return None if shape is None else (int(shape[0]), int(shape[1]))


def run_pipeline_tracking(transforms: Sequence[Callable],
                          data_info: dict) -> Tuple[dict, dict]:
    """Run a data pipeline and follow its geometry, transform by transform.

    Each transform that changes the frame is classified from the results
    dict: a new ``crop_bbox`` (mmaction2 crops) shifts the origin, a flip
    (``flip`` turning True) mirrors, any other change of ``img_shape`` is a
    resize of the whole frame. A transform named ``*Crop*`` that changes the
    shape without a ``crop_bbox``, multi-crop (``ThreeCrop``/``TenCrop``) and
    lazy mode are refused rather than guessed.

    Returns:
        tuple: the packed results and ``geometry``: ``affine`` ``(ax, bx,
        ay, by)`` mapping original pixel coordinates to final ones
        (``x' = ax*x + bx``), the final ``img_shape`` and, for video, the
        ``frame_inds``, ``clip_len`` and ``num_clips`` of the sampled clips.
    """
    results = dict(data_info)
    ax, bx, ay, by = 1.0, 0.0, 1.0, 0.0
    frame_inds, clip_len, num_clips, shape = None, None, None, None
    for t in transforms:
        name = type(t).__name__
        before, crop_before = _hw(results), results.get('crop_bbox')
        flip_before = bool(results.get('flip', False))
        if results.get('lazy'):
            raise NotImplementedError(
                f'{name}: lazy pipelines are not supported by the focus '
                'metric; use the eager form of the transforms.')
        out = t(results)
        if out is None:
            raise RuntimeError(f'pipeline transform {name} dropped the sample')
        results = out
        if results.get('frame_inds') is not None:
            frame_inds = np.asarray(results['frame_inds']).reshape(-1)
            clip_len = int(results.get('clip_len', len(frame_inds)))
            num_clips = int(results.get('num_clips', 1))
        after = _hw(results)
        if after is not None:
            shape = after
        if before is None or after is None:
            continue
        crop = results.get('crop_bbox')
        if crop is not None and crop is not crop_before:
            crop = np.asarray(crop)
            if crop.ndim != 1:
                raise NotImplementedError(
                    f'{name} makes several crops; the focus metric needs one '
                    'view per clip (use CenterCrop in the test pipeline).')
            bx, by = bx - float(crop[0]), by - float(crop[1])
        elif after != before:
            if 'Crop' in name:
                raise NotImplementedError(
                    f'{name} changed the frame from {before} to {after} '
                    'without recording a crop_bbox; the focus metric cannot '
                    'map boxes through it.')
            sy, sx = after[0] / before[0], after[1] / before[1]
            ax, bx, ay, by = ax * sx, bx * sx, ay * sy, by * sy
        if results.get('flip') and not flip_before:
            direction = results.get('flip_direction', 'horizontal')
            if direction == 'horizontal':
                ax, bx = -ax, after[1] - bx
            elif direction == 'vertical':
                ay, by = -ay, after[0] - by
            else:
                raise NotImplementedError(f'{name}: flip {direction!r}')
    return results, dict(affine=(ax, bx, ay, by), img_shape=shape,
                         frame_inds=frame_inds, clip_len=clip_len,
                         num_clips=num_clips)


def pixel_boxes_to_unit(boxes, geometry: dict) -> np.ndarray:
    """Inclusive pixel boxes ``(..., 4)`` of the original frames ->
    normalised boxes on the model input (see the module doc)."""
    b = np.asarray(boxes, dtype=np.float64).copy()
    b[..., 2:] += 1.0  # inclusive pixels -> continuous extent
    ax, bx, ay, by = geometry['affine']
    h, w = geometry['img_shape']
    xs = np.stack([b[..., 0], b[..., 2]]) * ax + bx
    ys = np.stack([b[..., 1], b[..., 3]]) * ay + by
    return np.stack([xs.min(0) / w, ys.min(0) / h, xs.max(0) / w,
                     ys.max(0) / h], axis=-1)


def clip_boxes(frame_boxes: Sequence, geometry: dict) -> List[np.ndarray]:
    """Per clip, the normalised boxes of the frames actually fed to the
    model, ``(clip_len, 4)`` each, from a video's per-frame pixel boxes."""
    inds = geometry['frame_inds']
    if inds is None:
        raise ValueError('the pipeline recorded no frame_inds (no '
                         'SampleFrames?); cannot map points to frames')
    frame_boxes = np.asarray(frame_boxes, dtype=np.float64)
    if inds.max() >= len(frame_boxes):
        raise ValueError(f'the pipeline sampled frame {int(inds.max())} but '
                         f'the annotation has {len(frame_boxes)} boxes')
    unit = pixel_boxes_to_unit(frame_boxes[inds], geometry)
    return list(unit.reshape(-1, geometry['clip_len'], 4))


# ---------------------------------------------------------------------------
# Box annotations
# ---------------------------------------------------------------------------


def replay_shape_boxes(root: str, seed: int = 0,
                       verify: Sequence[str] = ('val', )) -> Dict[str, list]:
    """Object boxes of a shapes data set written by ``make_shape_dataset``.

    For data made before the generator wrote ``boxes.json``. The generator
    is deterministic: replaying it with the same seed and counts (read from
    ``root``) gives every image and its box. The replayed images of the
    ``verify`` splits are compared pixel by pixel with the files, so a data
    set made with another seed or size is refused, never silently
    mis-annotated.

    Returns:
        dict: ``'split/class/00000.png' -> [x1, y1, x2, y2]`` inclusive pixels.
    """
    import cv2

    from tools.data.synthetic_images import SHAPES, make_shape_image
    counts, size = {}, None
    for split in ('train', 'val'):
        per_class = []
        for cls in SHAPES:
            folder = osp.join(root, split, cls)
            files = sorted(os.listdir(folder)) if osp.isdir(folder) else []
            per_class.append(len([f for f in files if f.endswith('.png')]))
            if size is None and per_class[-1]:
                size = cv2.imread(osp.join(folder, files[0])).shape[0]
        if len(set(per_class)) != 1:
            raise ValueError(f'{root}/{split}: classes hold {per_class} '
                             f'images; not a data set of make_shape_dataset')
        counts[split] = per_class[0]
    if size is None:
        raise FileNotFoundError(f'no shapes images under {root}')
    rng = np.random.default_rng(seed)
    boxes = {}
    for split in ('train', 'val'):
        for cls in SHAPES:
            for i in range(counts[split]):
                img, box = make_shape_image(rng, cls, size)
                rel = f'{split}/{cls}/{i:05d}.png'
                if split in verify:
                    disk = cv2.imread(osp.join(root, rel))
                    if disk is None or not np.array_equal(disk, img):
                        raise ValueError(
                            f'{osp.join(root, rel)} differs from the '
                            f'generator replayed with seed={seed}; pass '
                            'the seed the data was made with, or give '
                            'boxes in a json (--ann).')
                boxes[rel] = [int(v) for v in box]
    return boxes


def _shape_boxes(root: str, seed: int) -> Dict[str, list]:
    """The boxes ``make_shape_dataset`` wrote to ``root/boxes.json``; data
    made before it wrote them are replayed (:func:`replay_shape_boxes`)."""
    from tools.data.synthetic_images import BOXES_FILE
    path = osp.join(root, BOXES_FILE)
    if not osp.isfile(path):
        return replay_shape_boxes(root, seed)
    with open(path) as f:
        return json.load(f)['boxes']


def _suffix_lookup(table: Dict[str, object], path: str):
    parts = path.replace(os.sep, '/').split('/')
    for k in range(len(parts)):
        key = '/'.join(parts[k:])
        if key in table:
            return table[key]
    raise KeyError(path)


def load_box_annotations(ann: str, seed: int = 0) -> Callable[[dict], list]:
    """A function ``data_info -> pixel boxes`` for the samples of a dataset.

    Args:
        ann (str): ``'auto'``: a video's ``<name>.boxes.json`` beside it
            (written by ``make_motion_dataset``), or an image's box from the
            ``boxes.json`` that ``make_shape_dataset`` writes at the data
            root (replayed from the generator, :func:`replay_shape_boxes`,
            for data made without it). Or a
            json file ``{relative path: box}``, a box being inclusive pixels
            ``[x1, y1, x2, y2]`` (image) or a list of them, one per frame
            (video); a key matches a sample whose path ends with it.
        seed (int): generator seed for the image replay. Defaults to 0.

    Returns:
        Callable: ``data_info -> [[x1, y1, x2, y2], ...]`` (one box for an
        image, one per frame for a video).
    """
    table = None
    if ann != 'auto':
        with open(ann) as f:
            table = json.load(f)
        if isinstance(table, dict) and 'boxes' in table and isinstance(
                table['boxes'], dict):
            table = table['boxes']
    shape_boxes = {}  # data root -> its boxes

    def boxes_for(info: dict) -> list:
        path = info.get('filename') or info.get('img_path')
        if path is None:
            raise KeyError('sample has neither filename nor img_path')
        if table is not None:
            try:
                boxes = _suffix_lookup(table, path)
            except KeyError:
                raise KeyError(f'{ann} has no box for {path}') from None
        elif 'filename' in info:
            side = osp.splitext(path)[0] + '.boxes.json'
            if not osp.isfile(side):
                raise FileNotFoundError(
                    f'{side} not found: --ann auto reads the boxes that '
                    'make_motion_dataset writes beside each video; pass '
                    '--ann JSON for other data.')
            with open(side) as f:
                boxes = json.load(f)['boxes']
        else:
            root = osp.dirname(osp.dirname(osp.dirname(path)))
            if root not in shape_boxes:
                shape_boxes[root] = _shape_boxes(root, seed)
            boxes = _suffix_lookup(shape_boxes[root], path)
        boxes = np.asarray(boxes, dtype=np.float64)
        return boxes.reshape(-1, 4).tolist()

    return boxes_for


# ---------------------------------------------------------------------------
# Models and data sets
# ---------------------------------------------------------------------------


def build_model_and_dataset(cfg, checkpoint: Optional[str] = None,
                            split: str = 'val', init_seed: int = 0):
    """Build the classifier of ``cfg`` (weights from ``checkpoint``, or
    freshly initialised with ``init_seed``) and its ``split`` dataset."""
    from mmengine.logging import MMLogger
    from mmengine.registry import DATASETS, MODELS, init_default_scope
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    import_modules_from_strings(f'{scope}.models')
    import_modules_from_strings(f'{scope}.datasets')
    model_cfg = cfg.model.copy()
    if checkpoint is not None and 'pretrained' in model_cfg.get(
            'backbone', {}):
        model_cfg.backbone.pretrained = None  # the checkpoint has it all
    torch.manual_seed(init_seed)
    model = MODELS.build(model_cfg)
    # init_weights reports every parameter at INFO level: keep it quiet.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        if checkpoint is None:
            model.init_weights()
        else:
            from mmengine.runner import load_checkpoint
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=True, logger='silent')
    finally:
        logger.setLevel(level)
    model.eval()
    dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
    return model, dataset


@torch.no_grad()
def evaluate_focus(model,
                   dataset,
                   boxes_for: Callable[[dict], list],
                   batch_size: int = 16,
                   max_samples: Optional[int] = None,
                   keep_samples: bool = False) -> dict:
    """The focus metric of ``model`` over ``dataset``.

    Each sample goes through the dataset's own pipeline (so the boxes follow
    its frame sampling, resizes, crops and flips), the batch through the
    model's data preprocessor and ``backbone(x, return_trace=True)``. A
    video sample with several clips (a test pipeline's ``num_clips``)
    counts once per clip in ``num_samples``.

    Returns:
        dict: :func:`summarize_focus` output, plus ``samples`` (the
        per-sample results) when ``keep_samples``.
    """
    from mmengine.dataset import pseudo_collate
    n = len(dataset) if max_samples is None else min(max_samples,
                                                     len(dataset))
    transforms = dataset.pipeline.transforms
    samples = []
    for start in range(0, n, batch_size):
        packed, row_boxes = [], []
        for i in range(start, min(n, start + batch_size)):
            info = dataset.get_data_info(i)
            pix = boxes_for(info)
            results, geo = run_pipeline_tracking(transforms, info)
            packed.append(results)
            if geo['frame_inds'] is not None:
                row_boxes += clip_boxes(pix, geo)
            else:
                row_boxes.append(pixel_boxes_to_unit(pix[0], geo))
        data = model.data_preprocessor(pseudo_collate(packed), False)
        x = data['inputs']
        if x.dim() == 6:  # (B, clips, C, T, H, W), as mmaction2 recognisers
            x = x.flatten(0, 1)
        if x.shape[0] != len(row_boxes):
            raise RuntimeError(f'{x.shape[0]} model inputs but '
                               f'{len(row_boxes)} boxed views')
        trace = model.backbone(x, return_trace=True)
        for r, boxes in enumerate(row_boxes):
            passes = [dict(rois=p['rois'][r], points=p['points'][r])
                      for p in trace['passes']]
            samples.append(sample_focus(passes, trace['rois'][r],
                                        torch.as_tensor(boxes)))
    summary = summarize_focus(samples)
    if keep_samples:
        summary['samples'] = samples
    return summary
