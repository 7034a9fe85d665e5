# The video demo model with its 4 frames sampled 2 apart instead of 8 (the
# focus experiment trains its -r1 child, one tube per token; this one is
# its third-round version, ../README.md). The moving object
# then travels 2-3 px between sampled frames instead of 8-12 px (its own
# size), so a tube spanning several frames can stay on it; the per-frame
# focus metric rewards that. The direction of motion is still visible
# (6-9 px over the clip).
# Train: python tools/train.py THIS_CONFIG \
#     --cfg-options model.backbone.pretrained=IMAGE_CHECKPOINT
_base_ = '../../../configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py'  # noqa: E501

# the video demo's pipelines, their SampleFrames step taking frames 2 apart
sample = dict(type='SampleFrames', clip_len=4, frame_interval=2)
train_pipeline, val_pipeline, test_pipeline = (
    [dict(step, **sample) if step['type'] == 'SampleFrames' else step
     for step in pipeline]
    for pipeline in (_base_.train_pipeline, _base_.val_pipeline,
                     _base_.test_pipeline))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
