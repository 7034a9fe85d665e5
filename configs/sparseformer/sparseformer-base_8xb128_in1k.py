# SparseFormer-B: 81 tokens, 384 -> 768 x 10. 81.1 M params, 7.8 GFLOPs, 82.6 top-1.
_base_ = './sparseformer-tiny_8xb128_in1k.py'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4),
    neck=dict(in_channels=768),
    head=dict(in_channels=768))
