# The bootstrapping demo's SparseFormer, as data (the image and video
# configs share it): what tools/model_converters/vit_to_sparseformer.py
# builds from the 6-block, 96-wide demo ViT with --num-tokens 16
# --focus-dims 64 --source-heads 3: 16 latent tokens, a focusing unit of
# width 64 (x4), a sampling unit at the ViT's width, then the ViT's blocks
# 2-5 after a class token, with its LayerNorm eps and heads.
btsp = dict(head_dims=64, eps=1e-5, roi_adj_head='mlp', mixing_bias=False,
            mixing_inner_dims=128, mixing_out_points=32,
            padding_mode='border', clip_sampling_grad=False,
            transition_norm=False)
btsp_nano_arch = dict(
    num_tokens=16, num_points=16, feat_channels=64, shared_embedding=True,
    roi_init='grid_rest_full',
    stages=[
        dict(width=64, ops=('sampling', 'pe_inject', 'attn', 'mlp',
                            'roi_adj'), repeats=4, stage_embed=True, **btsp),
        dict(width=96, ops=('sampling', 'pe_inject'), **btsp),
        dict(width=96, ops=('attn', 'mlp'), depth=4, cls_token=True,
             **dict(btsp, eps=1e-6, head_dims=None), num_heads=3),
    ])
