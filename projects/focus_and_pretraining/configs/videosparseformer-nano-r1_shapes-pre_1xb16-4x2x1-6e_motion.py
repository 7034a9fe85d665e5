# The focus experiment's video config (../README.md): the 4x2x1 demo
# model with one tube per image token (replicates=1) instead of two. Each
# tube then starts on all 4 frames, as in the reference's K400 setting
# (32 frames, 8x inflation: 4 frames per tube), so video training need not
# stretch the tubes in time to see the motion, and the tokens keep the
# image model's focus.
# Train: python tools/train.py THIS_CONFIG \
#     --cfg-options model.backbone.pretrained=IMAGE_CHECKPOINT
_base_ = './videosparseformer-nano_shapes-pre_1xb16-4x2x1-6e_motion.py'

model = dict(backbone=dict(replicates=1))
