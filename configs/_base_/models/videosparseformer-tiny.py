# VideoSparseFormer-T for mmaction2: 49 tokens x R=8 tube replicas = 392.
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoSparseFormer',
        arch='tiny',
        replicates=8,
        drop_path_rate=0.2,
        # An image SparseFormer-T checkpoint (ours, or converted released
        # weights); inflated to tubes on init. Override with
        # --cfg-options model.backbone.pretrained=PATH (None: from scratch).
        pretrained='checkpoints/sparseformer-tiny_in1k.pth',
        pretrained2d=True),
    neck=dict(type='TokenPooling', in_channels=512),
    cls_head=dict(
        type='SparseFormerHead',
        num_classes=400,
        in_channels=512,
        dropout_ratio=0.5,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'),
)
