# AdamW, lr 5e-4 x batch/512 (1e-3 at 1024), 20 warm-up epochs from 1e-6,
# cosine to 1e-5 over 300 epochs, stepped per iteration, grad clip 5.0.
optim_wrapper = dict(
    # fp32 everywhere (amp='auto': AMP with a GPU); a NaN / inf loss stops
    # training before it reaches the weights (non_finite_loss='skip' drops
    # such steps instead)
    type='AmpOrFp32OptimWrapper', amp=False, non_finite_loss='raise',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    # No decay on 1-D params, biases, LayerNorms and the token RoIs.
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20,
         end=300, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for 8 GPUs x 128; --auto-scale-lr rescales to the real batch.
auto_scale_lr = dict(base_batch_size=1024)
