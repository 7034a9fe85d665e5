# SparseFormer-B image classifier (81 tokens, 384 -> 768 x 10, 36 points).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='SparseFormer', arch='base', drop_path_rate=0.4),
    neck=dict(type='TokenPooling', in_channels=768),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02,
                      bias=0.)),
    # Mixup 0.8 / CutMix 1.0, one of the two per batch (switch prob 0.5).
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]),
)
