# VideoSparseFormer-T for whole 16:9 frames with its tokens on a 12 x 7 grid
# (84 tokens x R = 8) instead of 7 x 7: the token density of a 224x224 crop
# over a 224x398 frame. The ImageNet-1K checkpoint's 7 x 7 grid is
# resampled onto it on loading (models/backbones/inflation.py resample_token_grid).
# Everything else is the full-frame config's (docs/views.md).
_base_ = ('./videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_'
          'kinetics400-rgb_full-frame.py')

# (the tiny arch in its short form; _delete_ replaces the base's 'tiny')
model = dict(backbone=dict(arch=dict(
    _delete_=True, num_tokens=84, focus_dims=256, cortex_dims=512, cortex_depth=8,
    num_points=36, token_grid=(12, 7))))
