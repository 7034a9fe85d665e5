# The image demo's base: a small SparseFormer learns which shape (circle /
# cross / square / triangle) sits somewhere on a cluttered 64x64 background,
# in 6 epochs. `make demo` trains the 8-epoch config derived from it
# (sparseformer-nano_1xb32-8e_shapes.py); the focus experiment's image stages
# (projects/focus_and_pretraining) train this one (configs/demo/README.md).
# Data: python tools/data/make_synthetic_images.py data/demo/shapes
# The video demo inflates this model's checkpoint, so the two share the arch.
_base_ = '../_base_/default_runtime.py'

# model settings: a nano SparseFormer, 16 tokens of 16 points, widths 64
# (focusing) -> 128 x 2 (cortex)
num_classes = 4
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SparseFormer',
        arch=dict(num_tokens=16, focus_dims=64, cortex_dims=128,
                  cortex_depth=2, num_points=16),
        # 64 heads would leave 2 channels per head at this width.
        num_heads=4,
        drop_path_rate=0.0),
    neck=dict(type='TokenPooling', in_channels=128),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, ),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02,
                      bias=0.)),
    train_cfg=None)
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],  # RGB
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# dataset settings: class-named folders (CustomDataset), 1,000 training and
# 100 validation images per class. SkipBadSamples replaces an unreadable
# image by another sample and DataCheckHook names it in the log, as the
# video configs do; its flat form (the dataset type by name, its arguments
# beside it) keeps train_dataloader.dataset.data_root=... working.
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

# schedule: AdamW, 1 warm-up epoch, cosine over the other 5
optim_wrapper = dict(
    # fp32 everywhere; a NaN / inf loss stops training before it reaches
    # the weights (non_finite_loss='skip' drops such steps instead)
    type='AmpOrFp32OptimWrapper', amp=False, non_finite_loss='raise',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    # no decay on 1-D params, biases, LayerNorms and the token RoIs
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=6, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=2)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

# runtime: the image runtime (configs/_base_/default_runtime.py), and
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = _base_.custom_hooks + [  # the runtime's guards, and:
    # RoIs and sampling points of 4 val images after each validation:
    # {work_dir}/vis_rois/epoch_{k}/
    dict(type='RoIVisualizationHook', num_samples=4),
]
randomness = dict(seed=0)
