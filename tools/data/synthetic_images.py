"""A small image dataset a model must *look for*: a shape on clutter.

The class is the shape (circle, square, triangle, cross) of one small object
placed at a random position on a cluttered background of random lines and
blobs, so a model that averages the whole image cannot solve it; one that
focuses on the object can. Written as PNG files in mmpretrain's
``CustomDataset`` folder layout: ``ROOT/{train,val}/<class>/<i>.png``, with
every object's box in ``ROOT/boxes.json`` (read by the focus metric).
"""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

SHAPES = ('circle', 'square', 'triangle', 'cross')
BOXES_FILE = 'boxes.json'  # beside train/ and val/


def _clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    img = rng.integers(60, 196, size=3).astype(np.float32) * np.ones(
        (size, size, 3), np.float32)
    img += rng.normal(0, 12, (size, size, 3))
    for _ in range(rng.integers(3, 7)):  # thin lines
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        color = rng.integers(0, 256, 3).tolist()
        cv2.line(img, tuple(map(int, p1)), tuple(map(int, p2)), color, 1)
    for _ in range(rng.integers(3, 7)):  # elongated blobs (never round)
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        major = int(rng.integers(4, size // 6 + 1))
        axes = (major, max(1, major // 3))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360,
                    rng.integers(0, 256, 3).tolist(), -1)
    return img


def draw_shape(img: np.ndarray, shape: str, center, radius: int, color):
    """Draw one filled ``shape`` of half-size ``radius`` at ``center``."""
    cx, cy = center
    if shape == 'circle':
        cv2.circle(img, (cx, cy), radius, color, -1)
    elif shape == 'square':
        cv2.rectangle(img, (cx - radius, cy - radius),
                      (cx + radius, cy + radius), color, -1)
    elif shape == 'triangle':
        pts = np.array([[cx, cy - radius], [cx - radius, cy + radius],
                        [cx + radius, cy + radius]], np.int32)
        cv2.fillPoly(img, [pts], color)
    elif shape == 'cross':
        w = max(1, radius // 3)
        cv2.rectangle(img, (cx - radius, cy - w), (cx + radius, cy + w),
                      color, -1)
        cv2.rectangle(img, (cx - w, cy - radius), (cx + w, cy + radius),
                      color, -1)
    else:
        raise ValueError(f'unknown shape {shape!r}; choose from {SHAPES}')


def make_shape_image(rng: np.random.Generator,
                     shape: str,
                     size: int = 64,
                     radius: Optional[Tuple[int, int]] = None):
    """One BGR uint8 image and the object's box ``(x1, y1, x2, y2)``.

    Args:
        rng (np.random.Generator): Source of all randomness.
        shape (str): One of :data:`SHAPES`.
        size (int): Image width and height. Defaults to 64.
        radius (tuple[int, int], optional): Range (inclusive, pixels) of the
            object's half-size. Defaults to ``(size // 8, size // 5)``.
    """
    img = _clutter(rng, size)
    lo, hi = radius or (size // 8, size // 5)
    if not 1 <= lo <= hi or 2 * hi + 4 > size:
        raise ValueError(f'radius range {(lo, hi)} does not fit a {size} px '
                         'image: need 1 <= low <= high and 2*high + 4 <= size')
    radius = int(rng.integers(lo, hi + 1))
    cx, cy = (int(v) for v in rng.integers(radius + 1, size - radius - 1, 2))
    color = rng.integers(0, 256, 3)
    while np.abs(color - img[cy, cx]).sum() < 150:  # keep it visible
        color = rng.integers(0, 256, 3)
    draw_shape(img, shape, (cx, cy), radius, color.tolist())
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, (cx - radius, cy - radius, cx + radius, cy + radius)


def make_shape_dataset(root: str,
                       num_train: int = 200,
                       num_val: int = 50,
                       size: int = 64,
                       classes: Sequence[str] = SHAPES,
                       seed: int = 0,
                       radius: Optional[Tuple[int, int]] = None
                       ) -> Dict[str, int]:
    """Write the dataset; ``num_train``/``num_val`` are per class.

    The object boxes go to ``ROOT/boxes.json``: ``{"boxes": {"split/class/
    00000.png": [x1, y1, x2, y2], ...}}`` (inclusive pixels), with the
    generator's settings beside them.

    Returns:
        dict: number of images written per split.
    """
    rng = np.random.default_rng(seed)
    counts, boxes = {}, {}
    for split, n in (('train', num_train), ('val', num_val)):
        for cls in classes:
            folder = osp.join(root, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                img, box = make_shape_image(rng, cls, size, radius)
                rel = f'{split}/{cls}/{i:05d}.png'
                cv2.imwrite(osp.join(root, rel), img)
                boxes[rel] = [int(v) for v in box]
        counts[split] = n * len(classes)
    with open(osp.join(root, BOXES_FILE), 'w') as f:
        json.dump(dict(size=size, seed=seed, radius=radius, boxes=boxes), f)
    return counts
