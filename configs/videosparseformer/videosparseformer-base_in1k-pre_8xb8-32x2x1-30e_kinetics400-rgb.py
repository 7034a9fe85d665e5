# VideoSparseFormer-B: 81 tokens x R = 8, from ImageNet SparseFormer-B.
_base_ = '../k400.py'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4,
                  pretrained='checkpoints/sparseformer-base_in1k.pth'),
    neck=dict(in_channels=768),
    cls_head=dict(in_channels=768))
