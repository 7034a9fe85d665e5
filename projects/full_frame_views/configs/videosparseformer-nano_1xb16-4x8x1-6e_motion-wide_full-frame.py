# The 16:9 motion demo (..._motion-wide.py: the same data, model and
# schedule) trained and tested for full frames: training on random crops of
# the frame's shape (16:9, between 4:3 and 64:27) resized to the full
# frame's view, 114x64, instead of 64x64 squares; validation and test on
# whole frames at short side 64 (4 clips x one 114x64 view at test, where
# the crops config takes three 64x64 views per clip), as the Kinetics-400
# full-frame config does. full_frame_views.py (this project) compares the
# two (docs/views.md).
_base_ = './videosparseformer-nano_1xb16-4x8x1-6e_motion-wide.py'

sample = _base_.sample
train_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, _base_.train_short_side)),
    dict(type='RandomResizedCrop', area_range=(0.3, 1.0),
         aspect_ratio_range=(4 / 3, 64 / 27)),
    # (width, height) of a 16:9 frame at short side 64: round(64 * 16 / 9)
    dict(type='Resize', scale=(114, _base_.crop_size), keep_ratio=False),
    # a horizontal flip turns a left move into a right one
    dict(type='Flip', flip_ratio=0.5, flip_label_map={1: 2, 2: 1}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=1, test_mode=True),
    dict(type='VideoDecode'),
    # short side: the crops config's crop size, so objects keep their scale
    dict(type='Resize', scale=(-1, _base_.crop_size), keep_ratio=True),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [  # 4 clips x 1 full frame = 4 views
    dict(type='VideoInit', backend='pyav'),
    dict(**sample, num_clips=4, test_mode=True),
    dict(type='VideoDecode'),
    dict(type='Resize', scale=(-1, _base_.crop_size), keep_ratio=True),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# a batch of clips of several sizes runs one batch per size, unpadded
val_cfg = dict(type='SizeGroupedValLoop')
test_cfg = dict(type='SizeGroupedTestLoop')
