"""Small datasets written by tests (nothing is downloaded)."""
import os
import os.path as osp

import cv2
import numpy as np

from sparseformer_mm.datasets import SHAPES, make_shape_image


def make_imagenet_like(root, per_class=2, size=48, seed=0):
    """ImageNet layout: ``{train,val}/<wnid>/*.JPEG`` + ``meta/{split}.txt``."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split in ('train', 'val'):
        lines = []
        for label, shape in enumerate(SHAPES):
            wnid = f'n{label:08d}'
            os.makedirs(osp.join(root, split, wnid), exist_ok=True)
            for i in range(per_class):
                img, _ = make_shape_image(rng, shape, size)
                rel = f'{wnid}/{shape}_{i}.JPEG'
                cv2.imwrite(osp.join(root, split, rel), img)
                lines.append(f'{rel} {label}')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root
