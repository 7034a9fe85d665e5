# SparseFormer-B on ImageNet-1K, the paper's recipe (8 GPUs x 128, 300
# epochs). Paper: 81.1 M params, 7.8 GFLOPs, 82.6 % top-1; this config has
# not been trained here (configs/sparseformer/README.md).
_base_ = [
    '../_base_/models/sparseformer-base.py',
    '../_base_/datasets/imagenet_bs128_sparseformer_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_sparseformer.py',
    '../_base_/default_runtime.py',
]

# EMA of the weights, decay 0.9999 per iteration (momentum = 1 - decay);
# validation reports both the EMA and the raw weights, as the recipe does.
custom_hooks = _base_.custom_hooks + [  # the runtime's guards, then EMA
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL',
         evaluate_on_ema=True, evaluate_on_origin=True),
]
