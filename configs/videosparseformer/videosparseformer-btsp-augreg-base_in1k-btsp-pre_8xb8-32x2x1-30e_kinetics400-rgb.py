# VideoSparseFormer from the AugReg-bootstrapped SparseFormer-B (48 x R = 8
# tubes + a class token); AugReg's normalisation (mean = std = 0.5).
_base_ = ('./videosparseformer-btsp-clip-base_in1k-btsp-pre_8xb8-32x2x1-'
          '30e_kinetics400-rgb.py')
model = dict(
    backbone=dict(
        arch='btsp-augreg-base',
        pretrained='checkpoints/sparseformer-btsp-augreg-base_in1k.pth'),
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3))
