# Bootstrapped SparseFormer-L from OpenAI CLIP ViT-L/14: 63 latent tokens,
# the last 16 blocks and the projection to the 768-d embedding are CLIP's.
_base_ = ['./sparseformer-btsp-clip-base_8xb128_in1k.py']
model = dict(
    backbone=dict(arch='btsp-clip-large'),
    neck=dict(in_channels=1024),
    head=dict(in_channels=1024, embed_dims=768,
              class_embeddings='data/imagenet/clip-vit-l14_class_embeddings'
                               '.pth'))
