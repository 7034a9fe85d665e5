# The bootstrapping demo's teacher (`make demo-bootstrap`): a small hybrid
# ViT trained with labels on the 64x64 shapes images: timm's R+ViT layout
# (a ResNet stem, stride 4, as AugReg's hybrids; then 2x2 patches: 8x8 = 64
# tokens) with 6 blocks of width 96. Its blocks 2-5, final norm and head
# become a bootstrapped SparseFormer's
# (tools/model_converters/vit_to_sparseformer.py; ../README.md).
# Data: python tools/data/make_synthetic_images.py data/demo/shapes
_base_ = '../../../configs/_base_/default_runtime.py'

num_classes = 4
model = dict(
    type='TimmClassifier',
    model_name='vit_tiny_r_s16_p8_224',
    pretrained=False,
    img_size=64,
    patch_size=2,
    embed_dim=96,
    depth=6,
    num_heads=3,
    num_classes=num_classes,
    loss=dict(type='CrossEntropyLoss'))
# AugReg's normalisation; the student inherits it with the blocks
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[127.5] * 3,
    std=[127.5] * 3,
    to_rgb=True)

data_root = 'data/demo/shapes'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SkipBadSamples', dataset='CustomDataset',
                 data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SkipBadSamples', dataset='CustomDataset',
                 data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    # fp32; a NaN / inf loss stops training before it reaches the weights
    type='AmpOrFp32OptimWrapper', amp=False,
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=8, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0)
