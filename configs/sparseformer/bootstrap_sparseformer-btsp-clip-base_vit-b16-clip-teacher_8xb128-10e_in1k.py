# Bootstrapping SparseFormer-B from OpenAI CLIP ViT-B/16 on ImageNet-1K
# images, without labels or captions; evaluated zero-shot against class
# text embeddings from a file (configs/sparseformer/README.md).
#   0. python tools/model_converters/vit_to_sparseformer.py \
#          checkpoints/clip-vit-b16.pth \
#          checkpoints/sparseformer-btsp-clip-base_init.pth --arch btsp-clip-base
_base_ = [
    './bootstrap_sparseformer-btsp-augreg-base_vit-b16-augreg-teacher_'
    '8xb128-10e_in1k.py'
]
clip_mean = [122.770938, 116.7460125, 104.09373615]
clip_std = [68.5005327, 66.6321579, 70.32316305]
model = dict(
    student=dict(
        backbone=dict(arch='btsp-clip-base'),
        head=dict(_delete_=True, type='ZeroShotClsHead', in_channels=768,
                  num_classes=1000,
                  embed_dims=512, topk=(1, 5),
                  class_embeddings='data/imagenet/clip-vit-b16_class_'
                                   'embeddings.pth'),
        init_cfg=dict(checkpoint='checkpoints/sparseformer-btsp-clip-base_'
                                 'init.pth')),
    # timm's CLIP ViT-B/16 with OpenAI's QuickGELU; the head is CLIP's proj
    teacher=dict(model_name='vit_base_patch16_clip_quickgelu_224',
                 num_classes=512),
    teacher_checkpoint='checkpoints/clip-vit-b16_timm.pth',
    data_preprocessor=dict(mean=clip_mean, std=clip_std))
data_preprocessor = dict(mean=clip_mean, std=clip_std)
