# Second image stage of the focus experiment (../README.md), before
# its video model: the image demo's SparseFormer (trained on `shapes`)
# fine-tuned on shapes the size of the video demo's moving objects
# (half-size 5-8 px instead of 8-12 px at 64x64). Small objects make the
# RoIs move and shrink onto the object.
# Data:  python tools/data/make_synthetic_images.py data/demo/shapes_small \
#     --radius 5 8
# Train: python tools/train.py THIS_CONFIG \
#     --cfg-options load_from=$(cat work_dirs/demo_image/last_checkpoint)
_base_ = '../../../configs/demo/sparseformer-nano_1xb32-6e_shapes.py'

data_root = 'data/demo/shapes_small'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
# the image demo's checkpoint (same classes, so the head is kept too)
load_from = None
