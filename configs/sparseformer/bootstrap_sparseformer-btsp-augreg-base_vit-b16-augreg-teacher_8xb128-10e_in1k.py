# Bootstrapping SparseFormer-B from an AugReg ViT-B/16 on ImageNet-1K
# images, without labels: the student's final representation (the class
# token after the final LayerNorm) learns the frozen ViT's. Our recipe: the
# paper gives no loss or schedule (configs/sparseformer/README.md).
#   0. a timm ViT-B/16 AugReg checkpoint (e.g. vit_base_patch16_224.
#      augreg_in21k_ft_in1k) at checkpoints/vit-b16-augreg.pth, then
#      python tools/model_converters/vit_to_sparseformer.py \
#          checkpoints/vit-b16-augreg.pth \
#          checkpoints/sparseformer-btsp-augreg-base_init.pth \
#          --arch btsp-augreg-base --arch-eps
#   1. bash tools/dist_train.sh CONFIG 8
_base_ = ['./sparseformer-btsp-augreg-base_8xb128_in1k.py']

student = dict(
    type='ImageClassifier',
    backbone=dict(type='SparseFormer', arch='btsp-augreg-base',
                  drop_path_rate=0.1),
    neck=dict(type='TokenPooling', in_channels=768, eps=1e-5, pool='cls'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=768,
              topk=(1, 5)),
    init_cfg=dict(type='Pretrained',
                  checkpoint='checkpoints/sparseformer-btsp-augreg-base_'
                             'init.pth'))
model = dict(
    _delete_=True,
    type='BootstrapDistiller',
    student=student,
    # the same ViT, frozen; its pre-logits representation is the target
    teacher=dict(type='TimmClassifier', model_name='vit_base_patch16_224',
                 num_classes=1000, pretrained=False),
    teacher_checkpoint='checkpoints/vit-b16-augreg.pth',
    frozen_blocks=4,  # the ViT's last third; blocks 4-7 are tuned
    loss='mse',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True))

train_pipeline = [  # light augmentation: the teacher sees the same crop
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # an unreadable image is replaced and named in the log (SkipBadSamples,
    # flat form: train_dataloader.dataset.data_root=... works as usual)
    dataset=dict(type='SkipBadSamples', dataset='ImageNet',
                 data_root='data/imagenet', split='train',
                 pipeline=train_pipeline))

optim_wrapper = dict(
    type='AmpOrFp32OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0,
                       custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         end=10, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
