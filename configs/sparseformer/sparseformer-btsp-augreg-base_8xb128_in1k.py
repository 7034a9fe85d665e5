# Bootstrapped SparseFormer-B from an AugReg ViT-B/16 (ImageNet-21K): 48
# latent tokens + a class token; the last 8 blocks are the ViT's.
# Evaluates the authors' released weights after
#   python tools/model_converters/sparseformer_to_mm.py \
#       sparseformer_btsp_augreg_base_converted.pth \
#       checkpoints/sparseformer-btsp-augreg-base_in1k.pth
# or a model bootstrapped with bootstrap_*augreg* configs.
_base_ = ['../_base_/default_runtime.py']

model = dict(
    type='ImageClassifier',
    backbone=dict(type='SparseFormer', arch='btsp-augreg-base'),
    neck=dict(type='TokenPooling', in_channels=768, eps=1e-5, pool='cls'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=768,
              topk=(1, 5)))

# AugReg ViTs see inputs normalised with mean = std = 0.5.
data_preprocessor = dict(num_classes=1000, mean=[127.5] * 3,
                         std=[127.5] * 3, to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    # an unreadable image is replaced and named in the log (SkipBadSamples,
    # flat form: val_dataloader.dataset.data_root=... works as usual)
    dataset=dict(type='SkipBadSamples', dataset='ImageNet',
                 data_root='data/imagenet', split='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
val_cfg = dict()
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict()
