# VideoSparseFormer-T with 16 frames x interval 4 (the same 64-frame span
# as 32x2) and R = 4 tube replicas (49 x 4 = 196 tokens): half the tokens
# and frames of the 32x2x1 config; everything else is the same.
# Train and test commands: configs/videosparseformer/README.md.
_base_ = '../_base_/video_runtime.py'

# model settings
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoSparseFormer',
        arch='tiny',
        replicates=4,
        drop_path_rate=0.2,
        # An image SparseFormer-T checkpoint (ours, or converted released
        # weights); inflated to tubes on init. Override with
        # --cfg-options model.backbone.pretrained=PATH (None: from scratch).
        pretrained='checkpoints/sparseformer-tiny_in1k.pth',
        pretrained2d=True),
    neck=dict(type='TokenPooling', in_channels=512),
    cls_head=dict(
        type='SparseFormerHead',
        num_classes=400,
        in_channels=512,
        dropout_ratio=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))

# dataset settings
# CheckedVideoDataset = mmaction2's VideoDataset + a strict list parser
# (malformed lines fail at build with file:line) + bad-video replacement:
# unreadable files and videos with fewer than min_frames frames are replaced
# by another sample (DataCheckHook in the runtime logs and limits them).
# Videos with min_frames..clip_len*frame_interval frames are looped by
# SampleFrames, as in mmaction2.
dataset_type = 'CheckedVideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'
ann_file_test = ann_file_val
clip_len, frame_interval, crop_size = 16, 4, 224
# PyAV decodes (VideoInit backend: 'pyav' | 'decord' | 'torchcodec'; the
# same frames; docs/decoding.md)
file_client_args = dict(io_backend='disk')

train_pipeline = [
    dict(type='VideoInit', backend='pyav', **file_client_args),
    dict(type='SampleFrames', clip_len=clip_len,
         frame_interval=frame_interval, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(crop_size, crop_size), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='VideoInit', backend='pyav', **file_client_args),
    dict(type='SampleFrames', clip_len=clip_len,
         frame_interval=frame_interval, num_clips=1, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
# multi-clip x three-crop testing: 4 clips x 3 crops = 12 views
test_pipeline = [
    dict(type='VideoInit', backend='pyav', **file_client_args),
    dict(type='SampleFrames', clip_len=clip_len,
         frame_interval=frame_interval, num_clips=4, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='ThreeCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file_train,
                 data_prefix=dict(video=data_root), pipeline=train_pipeline,
                 min_frames=clip_len))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file_val,
                 data_prefix=dict(video=data_root_val),
                 pipeline=val_pipeline, test_mode=True, min_frames=clip_len))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file_test,
                 data_prefix=dict(video=data_root_val),
                 pipeline=test_pipeline, test_mode=True,
                 min_frames=clip_len))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

# schedule: AdamW with linear warm-up and cosine decay, per iteration
optim_wrapper = dict(
    # AMP with a GPU; fp32 without one, with a line in the log (amp=True
    # would require a GPU). A NaN / inf loss stops training before it
    # reaches the weights (non_finite_loss='skip' drops such steps instead).
    type='AmpOrFp32OptimWrapper',
    # Dynamic scaling from 2^10 rather than 2^16: right after inflation the
    # temporal offsets have zero spread and their (standardised) gradients
    # are large, which overflows fp16 at 2^16 for the first steps.
    loss_scale=dict(init_scale=2.**10),
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    # no decay on 1-D params, biases, LayerNorms and the token RoIs
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
         end=2.5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=2.5,
         end=30, T_max=27.5, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_begin=1,
                 val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# lr above is for 8 GPUs x 8 clips; --auto-scale-lr rescales to the real
# batch.
auto_scale_lr = dict(enable=False, base_batch_size=64)
