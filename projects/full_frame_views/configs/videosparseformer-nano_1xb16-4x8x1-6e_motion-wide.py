# The video demo's model on 16:9 clips (128x72) whose moving object can be
# anywhere in the frame, trained and tested the way the Kinetics-400 configs
# are: random resized square crops (64x64) for training, a centre crop for
# validation and 4 clips x 3 crops (left, centre, right) for testing.
# The full-frame variant (..._motion-wide_full-frame.py) tests the same
# model on whole frames; full_frame_views.py (this project) compares them
# (docs/views.md).
# Data: python tools/data/make_synthetic_videos.py data/demo/motion_wide \
#           --size 128x72
_base_ = '../../../configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'  # noqa: E501

data_root = 'data/demo/motion_wide'
# the view size, as 224 is Kinetics-400's; frames are stored with a short
# side of 72, as Kinetics-400's are resized to a short side of 256
crop_size, train_short_side = 64, 72
sample = dict(type='SampleFrames', clip_len=4, frame_interval=8)
train_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, train_short_side)),
    # Kinetics-400's crops go down to 8 % of the frame; the object here
    # covers 2-4 % of it, and such crops would mostly cut it out
    dict(type='RandomResizedCrop', area_range=(0.3, 1.0)),
    dict(type='Resize', scale=(crop_size, crop_size), keep_ratio=False),
    # a horizontal flip turns a left move into a right one
    dict(type='Flip', flip_ratio=0.5, flip_label_map={1: 2, 2: 1}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [  # 4 clips x 3 crops = 12 views, averaged by the head
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=4, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='ThreeCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics400_train_list_videos.txt',
    data_prefix=dict(video=f'{data_root}/videos_train'),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
    data_prefix=dict(video=f'{data_root}/videos_val'),
    pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
    data_prefix=dict(video=f'{data_root}/videos_val'),
    pipeline=test_pipeline))
