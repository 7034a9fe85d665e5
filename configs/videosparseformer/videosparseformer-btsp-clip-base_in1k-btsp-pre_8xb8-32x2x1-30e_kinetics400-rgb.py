# VideoSparseFormer from the CLIP-bootstrapped SparseFormer-B: 48 latent
# tokens x R = 8 tubes (384) + a class token; the 8 inherited CLIP blocks
# see tubes whose temporal position is encoded (pe_time, zero at
# inflation). Image weights: the released btsp CLIP-B converted with
# tools/model_converters/sparseformer_to_mm.py, or one bootstrapped with
# configs/sparseformer/bootstrap_*clip*.
#   bash tools/dist_train.sh CONFIG 8
_base_ = './videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py'

clip_mean = [122.770938, 116.7460125, 104.09373615]
clip_std = [68.5005327, 66.6321579, 70.32316305]
model = dict(
    backbone=dict(
        arch='btsp-clip-base',
        drop_path_rate=0.1,
        pretrained='checkpoints/sparseformer-btsp-clip-base_in1k.pth'),
    neck=dict(in_channels=768, eps=1e-5, pool='cls'),
    cls_head=dict(in_channels=768),
    data_preprocessor=dict(mean=clip_mean, std=clip_std))
