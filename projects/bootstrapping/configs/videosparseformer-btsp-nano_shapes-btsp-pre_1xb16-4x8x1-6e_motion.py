# The bootstrapping demo's video stage (`make demo-bootstrap`): the video
# demo's task and schedule with the SparseFormer bootstrapped label-free
# from the demo ViT, inflated to tubes (R = 2, a class token, the temporal
# position encoding starting at zero). `pretrained` takes the bootstrapping
# run's checkpoint (its student) or a converted image checkpoint.
# Data: python tools/data/make_synthetic_videos.py data/demo/motion
_base_ = ['../../../configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py',  # noqa: E501
          './_base_/sparseformer-btsp-nano_arch.py']

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **_base_.btsp_nano_arch),
        pretrained='work_dirs/demo_bootstrap/bootstrap/epoch_4.pth'),
    # the class token's output, as the image model classifies
    neck=dict(in_channels=96, eps=1e-6, pool='cls'),
    cls_head=dict(in_channels=96),
    # the teacher's normalisation
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3))
