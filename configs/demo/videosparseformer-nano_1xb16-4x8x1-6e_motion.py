# The embedded video demo: which way does a small object move over clutter?
# No single frame tells; the model must follow the object through time.
# Data: python tools/data/make_synthetic_videos.py data/demo/motion
_base_ = '../k400.py'

data_root = 'data/demo/motion'
classes = ['move_down', 'move_left', 'move_right', 'move_up']  # label order
model = dict(
    backbone=dict(
        # the image demo's arch, so its checkpoint can seed this model
        arch=dict(_delete_=True, num_tokens=16, focus_dims=64,
                  cortex_dims=128, cortex_depth=2, num_points=16),
        num_heads=4,
        replicates=2,
        drop_path_rate=0.0,
        # make demo passes the image demo's checkpoint here (inflated to
        # tubes on init); from scratch this task needs ~12 epochs instead.
        pretrained=None),
    neck=dict(in_channels=128),
    cls_head=dict(num_classes=len(classes), in_channels=128,
                  dropout_ratio=0.0))

sample = dict(type='SampleFrames', clip_len=4, frame_interval=8)
train_pipeline = [
    dict(type='DecordInit'),
    dict(**sample, num_clips=1),
    dict(type='DecordDecode'),
    # a horizontal flip turns a left move into a right one
    dict(type='Flip', flip_ratio=0.5, flip_label_map={1: 2, 2: 1}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(**sample, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [  # 2 clips per video, averaged by the head
    dict(type='DecordInit'),
    dict(**sample, num_clips=2, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=2, persistent_workers=False,
    dataset=dict(ann_file=f'{data_root}/kinetics400_train_list_videos.txt',
                 data_prefix=dict(video=f'{data_root}/videos_train'),
                 pipeline=train_pipeline, min_frames=4))
val_dataloader = dict(
    batch_size=16, num_workers=2, persistent_workers=False,
    dataset=dict(ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
                 data_prefix=dict(video=f'{data_root}/videos_val'),
                 pipeline=val_pipeline, min_frames=4))
test_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=False,
    dataset=dict(ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
                 data_prefix=dict(video=f'{data_root}/videos_val'),
                 pipeline=test_pipeline, min_frames=4))

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=6, T_max=5, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=6, val_begin=1, val_interval=2)
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = _base_.custom_hooks + [  # the runtime's guards, and:
    # tubes and sampling points of 4 val clips after each validation:
    # {work_dir}/vis_rois/epoch_{k}/ (PNG + GIF)
    dict(type='RoIVisualizationHook', num_samples=4),
]
randomness = dict(seed=0)
