# Runtime shared by the image (mmpretrain) configs.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['sparseformer_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [
    # Keeps the sampling-coordinate gradient clip right under fp16 AMP.
    dict(type='SamplingGradScaleHook'),
    # reseeds python / numpy / torch per epoch and saves the sampler and
    # worker seeds: a resumed run draws what an unbroken one would
    dict(type='RNGStateHook'),
    # resume / load_from: the checkpoint holds the weights, so the
    # backbone's `pretrained` file is neither read nor required
    dict(type='SkipPretrainedOnLoadHook'),
    # labels vs the head's num_classes before the run; samples replaced by
    # a SkipBadSamples dataset wrapper logged, limited to 1 % of an epoch
    dict(type='DataCheckHook', max_bad_fraction=0.01),
    # a NaN / inf loss stops training before it reaches the weights
    # (action='skip' drops such steps instead)
    dict(type='NonFiniteLossHook', action='raise'),
]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
