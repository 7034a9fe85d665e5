# VideoSparseFormer-T with 16 frames x interval 4 (the same 64-frame span)
# and R = 4 tube replicas (196 tokens). Only the sampling changes.
_base_ = '../k400.py'
model = dict(backbone=dict(replicates=4))

clip_len, frame_interval = 16, 4
sample = dict(type='SampleFrames', clip_len=clip_len,
              frame_interval=frame_interval)
train_pipeline = [
    dict(type='DecordInit'),
    dict(**sample, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(**sample, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [
    dict(type='DecordInit'),
    dict(**sample, num_clips=4, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline,
                                     min_frames=clip_len))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline,
                                   min_frames=clip_len))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline,
                                    min_frames=clip_len))
