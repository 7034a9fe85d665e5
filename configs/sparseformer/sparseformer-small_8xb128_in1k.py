# SparseFormer-S: 64 tokens, 320 -> 640 x 8. 47.6 M params, 3.8 GFLOPs, 82.0 top-1.
_base_ = './sparseformer-tiny_8xb128_in1k.py'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3),
    neck=dict(in_channels=640),
    head=dict(in_channels=640))
