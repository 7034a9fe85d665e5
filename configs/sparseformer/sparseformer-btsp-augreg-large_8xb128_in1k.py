# Bootstrapped SparseFormer-L from an AugReg ViT-L/16 (ImageNet-21K): the
# last 16 blocks are the ViT's. Paper: 84.9 % top-1 from a ViT-L/16-384.
_base_ = ['./sparseformer-btsp-augreg-base_8xb128_in1k.py']
model = dict(backbone=dict(arch='btsp-augreg-large'),
             neck=dict(in_channels=1024), head=dict(in_channels=1024))
