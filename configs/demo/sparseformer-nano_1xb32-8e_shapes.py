# The embedded image demo (`make demo-image`): the 6-epoch config's model
# and data, trained 8 epochs with the learning rate held after the warm-up
# and a cosine over the last two. Six epochs with a cosine from epoch 1
# stopped anywhere between 72 % and 92 % depending on the seed and thread
# count; this schedule reached 96.0 / 97.5 / 96.75 % for seeds 0 / 1 / 2
# (configs/demo/README.md). The focus experiments keep the 6-epoch one.
_base_ = './sparseformer-nano_1xb32-6e_shapes.py'

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=6,
         end=8, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=2)
