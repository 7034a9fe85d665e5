# Bootstrapped SparseFormer-B from OpenAI CLIP ViT-B/16: the last 8 blocks
# and the projection to CLIP's 512-d embedding are CLIP's. Classifies
# zero-shot against class text embeddings from a file (no text tower runs):
# a (1000, 512) tensor of CLIP text embeddings of the class prompts, saved
# with torch.save at the path below.
_base_ = ['./sparseformer-btsp-augreg-base_8xb128_in1k.py']
model = dict(
    backbone=dict(arch='btsp-clip-base'),
    head=dict(_delete_=True, type='ZeroShotClsHead', in_channels=768,
              num_classes=1000,
              embed_dims=512, topk=(1, 5),
              class_embeddings='data/imagenet/clip-vit-b16_class_embeddings'
                               '.pth'))
data_preprocessor = dict(  # CLIP's normalisation
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305])
