"""A small video dataset whose class is *motion*: which way an object moves.

One small object (a random shape from :data:`SHAPES`, in a colour that
stands out) moves at constant speed over a static cluttered background. The
class is the direction of motion (``move_down``, ``move_left``,
``move_right``, ``move_up``); shape, colour, speed and start position are
random, so no single frame tells the class: a model has to compare frames.
Frames are square by default; ``size=(width, height)`` makes wide ones
(e.g. 16:9), where the start is drawn over the whole frame as well, so a
centre crop often misses the object.

Written as real mp4 files (cv2's ``mp4v`` encoder, which decord decodes) in
mmaction2's Kinetics layout, see :func:`make_motion_dataset`.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np
# tools/data, this file's folder, is where its scripts import from:
# the Kinetics list builder imports from its sub-folder.
from kinetics.kinetics_tools import build_file_list
from synthetic_images import SHAPES, _clutter, draw_shape

# Sorted, so that the index of a class is the label build_file_list (which
# sorts class folder names) gives it.
MOTION_CLASSES = ('move_down', 'move_left', 'move_right', 'move_up')
_DIRECTIONS = {
    'move_down': (0, 1),
    'move_left': (-1, 0),
    'move_right': (1, 0),
    'move_up': (0, -1),
}


Size = Union[int, Tuple[int, int]]  # side, or (width, height)


def frame_size(size: Size) -> Tuple[int, int]:
    """``(width, height)`` of a :data:`Size`: an int is a square side.

    Raises:
        ValueError: If a side is not a positive integer.
    """
    w, h = (size, size) if isinstance(size, (int, np.integer)) else size
    if int(w) != w or int(h) != h or min(w, h) < 1:
        raise ValueError(f'frame size must be a positive int or (width, '
                         f'height) of positive ints, got {size!r}')
    return int(w), int(h)


def parse_size(text: str) -> Size:
    """``'64'`` -> 64 (square), ``'128x72'`` -> (128, 72) (width x height).

    Raises:
        ValueError: On anything else, saying the two accepted forms.
    """
    try:
        if 'x' in text.lower():
            w, h = (int(v) for v in text.lower().split('x'))
            return frame_size((w, h))
        return frame_size(int(text))[0]
    except ValueError:
        raise ValueError(f'size {text!r}: give a side (64) or WIDTHxHEIGHT '
                         '(128x72) in pixels') from None


def motion_object_radius(size: int) -> Tuple[int, int]:
    """The range (inclusive, pixels) of the moving object's half-size in
    ``size`` px frames: smaller than the image demo's objects, to leave room
    to travel. ``make_shape_dataset(..., radius=motion_object_radius(size))``
    draws still images of objects the size of the videos'."""
    return max(2, size // 12), max(2, size // 8)


def make_motion_clip(rng: np.random.Generator,
                     direction: str,
                     size: Size = 64,
                     num_frames: int = 32,
                     speed: Tuple[float, float] = (1.0, 2.0)):
    """Render one clip of an object moving in ``direction``.

    Args:
        rng (np.random.Generator): Source of all randomness.
        direction (str): One of :data:`MOTION_CLASSES`.
        size (int | tuple[int, int]): Frame side, or ``(width, height)``.
            Object size and speed scale with the shorter side, and the speed
            range is the same in every direction (set by the shorter side),
            so that speed does not tell the class. Defaults to 64.
        num_frames (int): Clip length. Defaults to 32.
        speed (tuple[float, float]): Range of the speed in pixels per frame
            *at 64 px* (scaled with ``size``). The upper end is lowered where
            the object would otherwise leave the frame before the clip ends
            (at 64 px and 32 frames the fastest is about 1.5 px/frame).

    Returns:
        tuple: ``frames`` (uint8 BGR array ``(num_frames, height, width,
        3)``),
        ``boxes`` (list of inclusive pixel boxes ``[x1, y1, x2, y2]``, one
        per frame), and ``info`` (dict with ``shape``, ``speed`` in
        px/frame and ``color``).

    Raises:
        ValueError: If even the lowest speed would take the object out of
            the frame (too many frames for ``size``).
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f'unknown direction {direction!r}; choose from '
                         f'{MOTION_CLASSES}')
    dx, dy = _DIRECTIONS[direction]
    width, height = frame_size(size)
    short = min(width, height)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    # A wide frame's clutter is the top of a square one (a square frame's
    # is the whole square: the same draws as ever, the same clips).
    bg = _clutter(rng, max(width, height))[:height, :width]
    low, high = motion_object_radius(short)
    radius = int(rng.integers(low, high + 1))
    lo, hi = radius + 1, short - radius - 2  # centre range, object inside
    # the centre's range along the motion and across it
    hi_along = (width if dx else height) - radius - 2
    hi_across = (height if dx else width) - radius - 2
    scale = short / 64
    fastest = (hi - lo) / max(1, num_frames - 1)
    v_lo, v_hi = speed[0] * scale, min(speed[1] * scale, fastest)
    if v_hi < v_lo:
        raise ValueError(
            f'{num_frames} frames at >= {v_lo:.2f} px/frame do not fit in '
            f'{short} px; use fewer frames, a bigger size or a lower speed')
    v = float(rng.uniform(v_lo, v_hi))
    travel = v * (num_frames - 1)
    # Start anywhere the whole path stays inside the frame.
    along = float(rng.uniform(lo, hi_along - travel))
    if dx + dy < 0:  # moving towards 0: start at the far end
        along += travel
    across = int(rng.integers(lo, hi_across + 1))
    centers = []
    for t in range(num_frames):
        a = int(round(along + (dx + dy) * v * t))
        centers.append((a, across) if dx else (across, a))
    boxes = [[cx - radius, cy - radius, cx + radius, cy + radius]
             for cx, cy in centers]

    # Contrast with the mean background over the swept area (the object is
    # seen against all of it), as the image demo does at a single point.
    x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x2, y2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    mean_bg = bg[y1:y2 + 1, x1:x2 + 1].reshape(-1, 3).mean(0)
    color = rng.integers(0, 256, 3)
    while np.abs(color - mean_bg).sum() < 150:
        color = rng.integers(0, 256, 3)

    bg = np.clip(bg, 0, 255).astype(np.uint8)
    frames = np.repeat(bg[None], num_frames, axis=0)
    for frame, center in zip(frames, centers):
        draw_shape(frame, shape, center, radius, color.tolist())
    info = dict(shape=shape, speed=v, color=color.tolist())
    return frames, boxes, info


def write_video(path: str, frames: np.ndarray, fps: float = 16) -> None:
    """Write BGR ``frames`` ``(T, H, W, 3)`` as an mp4v video at ``path``."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    if not writer.isOpened():
        raise RuntimeError(f'cv2 cannot write an mp4v video to {path!r}')
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


def make_motion_dataset(root: str,
                        num_train: int = 150,
                        num_val: int = 30,
                        size: Size = 64,
                        num_frames: int = 32,
                        fps: float = 16,
                        seed: int = 0,
                        classes: Sequence[str] = MOTION_CLASSES
                        ) -> Dict[str, int]:
    """Write the motion dataset in mmaction2's Kinetics layout.

    ``ROOT/videos_{train,val}/<class>/<i>.mp4``, each with its
    ``<i>.boxes.json`` (class, shape, speed and the per-frame object boxes,
    inclusive pixel ``[x1, y1, x2, y2]``), then the lists
    ``ROOT/kinetics400_{train,val}_list_videos.txt`` and ``ROOT/classes.txt``
    from ``build_file_list`` of ``tools/data/kinetics/kinetics_tools.py``.

    Every clip has its own random stream seeded by ``(seed, split, class,
    index)``, so a clip does not change when the counts change.

    Args:
        root (str): Output folder.
        num_train (int): Training videos per class. Defaults to 150.
        num_val (int): Validation videos per class. Defaults to 30.
        size (int | tuple[int, int]): Frame side, or ``(width, height)``
            (e.g. ``(128, 72)``, 16:9). Defaults to 64.
        num_frames (int): Frames per video. Defaults to 32.
        fps (float): Frame rate stored in the files. Defaults to 16.
        seed (int): Random seed. Defaults to 0.
        classes (Sequence[str]): Subset of :data:`MOTION_CLASSES` to write.

    Returns:
        dict: number of videos written per split.
    """
    counts = {}
    for split_id, (split, n) in enumerate((('train', num_train),
                                           ('val', num_val))):
        for cls in classes:
            class_id = MOTION_CLASSES.index(cls)
            folder = osp.join(root, f'videos_{split}', cls)
            if n > 0:  # no empty split folder: the list builder rejects it
                os.makedirs(folder, exist_ok=True)
            for i in range(n):
                rng = np.random.default_rng([seed, split_id, class_id, i])
                frames, boxes, info = make_motion_clip(rng, cls, size,
                                                       num_frames)
                name = f'{i:05d}'
                write_video(osp.join(folder, f'{name}.mp4'), frames, fps)
                meta = {'class': cls, **info, 'fps': fps, 'boxes': boxes}
                with open(osp.join(folder, f'{name}.boxes.json'), 'w') as f:
                    json.dump(meta, f)
        counts[split] = n * len(classes)
    build_file_list(root)
    return counts


def load_boxes(video_path: str) -> List[List[int]]:
    """The per-frame boxes saved beside a generated ``video_path``."""
    with open(osp.splitext(video_path)[0] + '.boxes.json') as f:
        return json.load(f)['boxes']
