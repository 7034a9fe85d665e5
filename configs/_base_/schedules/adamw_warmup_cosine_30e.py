# AdamW with linear warm-up and cosine decay, per iteration; fp16 AMP.
# Batch 64 (8 GPUs x 8 clips); --auto-scale-lr rescales to the real batch.
optim_wrapper = dict(
    # AMP (AmpOptimWrapper) with a GPU; fp32 (OptimWrapper) without one, with
    # a line in the log, whatever the entry point. 'AmpOptimWrapper' would
    # require a GPU (tools/train.py --amp sets it).
    type='AmpOrFp32OptimWrapper',
    # Dynamic scaling from 2^10 rather than 2^16: right after inflation the
    # temporal offsets have zero spread and their (standardised) gradients
    # are large, which overflows fp16 at 2^16 for the first steps.
    loss_scale=dict(init_scale=2.**10),
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
         end=2.5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=2.5,
         end=30, T_max=27.5, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=30, val_begin=1,
                 val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=64)
