# The bootstrapping demo (`make demo-bootstrap`): a small bootstrapped
# SparseFormer learns the demo ViT teacher's final representation on the
# shapes images, without labels (the validation accuracy goes through the
# teacher's head and is the only place labels are read).
#   1. the teacher: vit-hybrid-nano_1xb32-8e_shapes.py (beside this config)
#   2. the student's initial weights from the teacher's checkpoint:
#      python tools/model_converters/vit_to_sparseformer.py TEACHER.pth \
#          work_dirs/demo_bootstrap/student_init.pth \
#          --num-tokens 16 --focus-dims 64 --source-heads 3
#   3. this config, with teacher_checkpoint and the student's init_cfg
#      pointing at those two files (the paths below are make's).
# bootstrap_demo.py (this project) runs all of it; ../README.md.
_base_ = ['./vit-hybrid-nano_1xb32-8e_shapes.py',
          './_base_/sparseformer-btsp-nano_arch.py']

student = dict(
    type='ImageClassifier',
    backbone=dict(type='SparseFormer', arch=_base_.btsp_nano_arch),
    neck=dict(type='TokenPooling', in_channels=96, eps=1e-6, pool='cls'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=96,
              topk=(1, )),
    init_cfg=dict(type='Pretrained',
                  checkpoint='work_dirs/demo_bootstrap/student_init.pth'))
model = dict(
    _delete_=True,
    type='BootstrapDistiller',
    student=student,
    teacher=_base_.model,
    teacher_checkpoint='work_dirs/demo_bootstrap/teacher.pth',
    frozen_blocks=2,  # the teacher's blocks 4-5; blocks 2-3 are tuned
    loss='mse',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                           std=[127.5] * 3, to_rgb=True))

optim_wrapper = dict(
    # fp32; a NaN / inf loss stops training before it reaches the weights
    type='AmpOrFp32OptimWrapper', amp=False,
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0,
                       custom_keys={'.initial_roi': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=4, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=4, val_interval=1)
