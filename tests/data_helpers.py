"""Small datasets written by tests (nothing is downloaded), and the demo
data generators of ``tools/data``, re-exported.

``tools/`` is not a package: its scripts import the modules beside them by
plain name (a script's folder is first on the module search path). Tests
import them the same way, from the folders pytest.ini's ``pythonpath`` names
(``tools/data``, ``tools/data/kinetics``; the repository root for
``tools.<module>`` and ``projects.<name>.<module>``), so a test and a script
share one copy.
"""
import os
import os.path as osp

import cv2
import numpy as np
import synthetic_images as _images
import synthetic_videos as _videos

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')

SHAPES = _images.SHAPES
make_shape_image = _images.make_shape_image
make_shape_dataset = _images.make_shape_dataset
MOTION_CLASSES = _videos.MOTION_CLASSES
make_motion_clip = _videos.make_motion_clip
make_motion_dataset = _videos.make_motion_dataset
motion_object_radius = _videos.motion_object_radius
write_video = _videos.write_video


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


def add_bad_videos(root, video_dir='videos_train',
                   ann_file=None, label=0, short_frames=2):
    """Add one bad video of each kind to a generated motion dataset.

    Writes into ``root/video_dir/bad/`` and appends ``path label`` lines to
    ``ann_file``: ``missing`` (listed, not on disk), ``empty`` (0 bytes),
    ``text`` (a text file named .mp4), ``truncated`` (the first half of a
    real mp4) and ``short`` (a real mp4 of ``short_frames`` frames).

    Returns:
        dict: kind -> full path, as the dataset sees it.
    """
    folder = osp.join(root, video_dir, 'bad')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(123)
    frames, _, _ = make_motion_clip(rng, 'move_up', 32, 8)
    write_video(osp.join(folder, 'truncated.mp4'), frames)
    with open(osp.join(folder, 'truncated.mp4'), 'rb') as f:
        data = f.read()
    with open(osp.join(folder, 'truncated.mp4'), 'wb') as f:
        f.write(data[:len(data) // 2])
    write_video(osp.join(folder, 'short.mp4'), frames[:short_frames])
    open(osp.join(folder, 'empty.mp4'), 'wb').close()
    with open(osp.join(folder, 'text.mp4'), 'w') as f:
        f.write('this is not a video\n' * 20)
    kinds = ('missing', 'empty', 'text', 'truncated', 'short')
    if ann_file is not None:
        with open(ann_file, 'a') as f:
            for kind in kinds:
                f.write(f'bad/{kind}.mp4 {label}\n')
    return {k: osp.join(root, video_dir, 'bad', f'{k}.mp4') for k in kinds}
