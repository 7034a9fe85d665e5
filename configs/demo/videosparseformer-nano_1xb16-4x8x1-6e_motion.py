# The embedded video demo (`make demo`): which way does a small object move
# over clutter? No single frame tells; the model must follow the object
# through time. Starts from the image demo's checkpoint, inflated to tubes
# (configs/demo/README.md).
# Data: python tools/data/make_synthetic_videos.py data/demo/motion
_base_ = '../_base_/video_runtime.py'

# model settings: the image demo's nano SparseFormer, each token inflated
# into R = 2 tube replicas (16 x 2 = 32 tokens)
classes = ['move_down', 'move_left', 'move_right', 'move_up']  # label order
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoSparseFormer',
        # the image demo's arch, so its checkpoint can seed this model
        arch=dict(num_tokens=16, focus_dims=64, cortex_dims=128,
                  cortex_depth=2, num_points=16),
        num_heads=4,
        replicates=2,
        drop_path_rate=0.0,
        # make demo passes the image demo's checkpoint here (inflated to
        # tubes on init); from scratch this task needs ~12 epochs instead.
        pretrained=None,
        pretrained2d=True),
    neck=dict(type='TokenPooling', in_channels=128),
    cls_head=dict(
        type='SparseFormerHead',
        num_classes=len(classes),
        in_channels=128,
        dropout_ratio=0.0,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

# dataset settings: mp4 clips in Kinetics' layout (a list file of
# "video label" lines per split), 150 training and 30 validation videos per
# class; 4 frames 8 apart per clip, decoded by PyAV as the Kinetics-400
# configs do (VideoInit backend: 'pyav' | 'decord' | 'torchcodec';
# docs/decoding.md)
data_root = 'data/demo/motion'
dataset_type = 'CheckedVideoDataset'
sample = dict(type='SampleFrames', clip_len=4, frame_interval=8)
train_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1),
    dict(type='VideoDecode'),
    # a horizontal flip turns a left move into a right one
    dict(type='Flip', flip_ratio=0.5, flip_label_map={1: 2, 2: 1}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [  # 2 clips per video, averaged by the head
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=2, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/kinetics400_train_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/videos_train'),
        pipeline=train_pipeline,
        min_frames=4))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/videos_val'),
        pipeline=val_pipeline,
        test_mode=True,
        min_frames=4))
test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
        data_prefix=dict(video=f'{data_root}/videos_val'),
        pipeline=test_pipeline,
        test_mode=True,
        min_frames=4))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

# schedule: AdamW, 1 warm-up epoch, cosine over the other 5
optim_wrapper = dict(
    # AMP with a GPU; fp32 without one, with a line in the log
    # (amp=True would require a GPU). A NaN / inf loss stops training before
    # it reaches the weights (non_finite_loss='skip' drops such steps).
    type='AmpOrFp32OptimWrapper', non_finite_loss='raise',
    # dynamic loss scaling from 2^10: right after inflation the temporal
    # offsets' (standardised) gradients are large enough to overflow fp16
    # at 2^16
    loss_scale=dict(init_scale=2.**10),
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
         end=6, T_max=5, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=6, val_begin=1,
                 val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime: the video runtime (configs/_base_/video_runtime.py), and
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
custom_hooks = _base_.custom_hooks + [  # the runtime's guards, and:
    # tubes and sampling points of 4 val clips after each validation:
    # {work_dir}/vis_rois/epoch_{k}/ (PNG + GIF)
    dict(type='RoIVisualizationHook', num_samples=4),
]
randomness = dict(seed=0)
