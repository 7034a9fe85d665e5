# The embedded image demo: a small SparseFormer learns which shape sits
# somewhere on a cluttered 64x64 background (data: make demo generates it).
_base_ = '../sparseformer/sparseformer-tiny_8xb128_in1k.py'

data_root = 'data/demo/shapes'
num_classes = 4
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, num_tokens=16, focus_dims=64, cortex_dims=128,
                  cortex_depth=2, num_points=16),
        # 64 heads would leave 2 channels per head at this width.
        num_heads=4,
        drop_path_rate=0.0),
    neck=dict(in_channels=128),
    head=dict(num_classes=num_classes, in_channels=128,
              loss=dict(_delete_=True, type='CrossEntropyLoss'), topk=(1, )),
    train_cfg=None)
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=train_pipeline),
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=6, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=6, val_interval=2)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = [
    dict(type='SamplingGradScaleHook'),
    # the parent config's list minus its EMAHook (a 6-epoch demo needs none)
    dict(type='DataCheckHook', max_bad_fraction=0.01),
    dict(type='NonFiniteLossHook', action='raise'),
    # RoIs and sampling points of 4 val images after each validation:
    # {work_dir}/vis_rois/epoch_{k}/
    dict(type='RoIVisualizationHook', num_samples=4),
]
randomness = dict(seed=0)
