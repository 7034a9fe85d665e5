# Third image stage of the focus experiment (../README.md): the
# `shapes_small` model fine-tuned on still smaller objects (half-size 4-6 px
# at 64x64, a 0.03 share of the image). Each stage on smaller objects moves
# and shrinks the RoIs further onto the object.
# Data:  python tools/data/make_synthetic_images.py data/demo/shapes_tiny \
#     --radius 4 6
# Train: python tools/train.py THIS_CONFIG \
#     --cfg-options load_from=$(cat work_dirs/<shapes_small run>/last_checkpoint)
_base_ = './sparseformer-nano_shapes-pre_1xb32-6e_shapes-small.py'

data_root = 'data/demo/shapes_tiny'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
# the shapes_small model's checkpoint (same classes, so the head is kept too)
load_from = None
