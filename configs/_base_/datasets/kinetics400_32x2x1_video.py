# Kinetics-400 from videos (decord), 32 frames x interval 2, 224x224.
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
clip_len, frame_interval, crop_size = 32, 2, 224
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
