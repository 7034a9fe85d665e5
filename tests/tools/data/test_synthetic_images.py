import json
import os.path as osp

import numpy as np
import pytest

import synthetic_images

SHAPES = synthetic_images.SHAPES
make_shape_dataset = synthetic_images.make_shape_dataset
make_shape_image = synthetic_images.make_shape_image


@pytest.mark.parametrize('shape', SHAPES)
def test_box_is_the_drawn_objects_extent(shape):
    """The box is where the object was drawn: drawing the same image with
    the object left out (same random stream up to the colour) differs from
    it only inside the box, and on every side of it."""
    img, box = make_shape_image(np.random.default_rng(5), shape, 48, (6, 6))
    x1, y1, x2, y2 = box
    assert x2 - x1 == y2 - y1 == 12  # radius 6, inclusive pixels
    # the clutter alone, from the same stream (the object is drawn last)
    clutter = synthetic_images._clutter(np.random.default_rng(5), 48)
    bg = np.clip(clutter, 0, 255).astype(np.uint8)
    changed = np.argwhere((img != bg).any(-1))  # (y, x)
    assert changed[:, 1].min() == x1 and changed[:, 1].max() == x2
    if shape != 'triangle':  # its apex row is a single pixel at y1
        assert changed[:, 0].min() == y1
    assert changed[:, 0].max() == y2


def test_dataset_writes_boxes_and_object_size(tmp_path):
    root = str(tmp_path / 'shapes')
    counts = make_shape_dataset(root, num_train=2, num_val=1, size=40,
                                radius=(3, 4))
    assert counts == dict(train=8, val=4)
    with open(osp.join(root, 'boxes.json')) as f:
        meta = json.load(f)
    assert meta['size'] == 40 and meta['radius'] == [3, 4]
    assert sorted(meta['boxes']) == sorted(
        f'{s}/{c}/{i:05d}.png' for s, n in (('train', 2), ('val', 1))
        for c in SHAPES for i in range(n))
    for x1, y1, x2, y2 in meta['boxes'].values():
        assert x2 - x1 in (6, 8) and y2 - y1 == x2 - x1
        assert 0 <= x1 and x2 < 40 and 0 <= y1 and y2 < 40


def test_object_size_that_cannot_fit_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match='does not fit a 32 px'):
        make_shape_image(rng, 'circle', 32, (5, 15))
    with pytest.raises(ValueError, match='low <= high'):
        make_shape_image(rng, 'circle', 32, (6, 5))
