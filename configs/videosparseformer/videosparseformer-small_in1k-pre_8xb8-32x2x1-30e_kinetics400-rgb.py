# VideoSparseFormer-S: 64 tokens x R = 8, from ImageNet SparseFormer-S.
_base_ = '../k400.py'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3,
                  pretrained='checkpoints/sparseformer-small_in1k.pth'),
    neck=dict(in_channels=640),
    cls_head=dict(in_channels=640))
