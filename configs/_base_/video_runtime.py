# Runtime shared by the video (mmaction2) configs.
default_scope = 'mmaction'
custom_imports = dict(imports=['sparseformer_mm'], allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # CheckpointHook that writes checkpoints and last_checkpoint whole (the
    # atomic_local file backend: temporary file, fsync, rename), deletes old
    # ones only after the new one, and never saves NaN weights or weights
    # from inside a run of skipped NaN steps (a kill while saving loses
    # nothing)
    checkpoint=dict(type='SafeCheckpointHook', interval=1, save_best='auto',
                    max_keep_ckpts=3,
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'),
    # mmaction2's tools/test.py asserts this hook exists
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [
    # reseeds python / numpy / torch per epoch and saves the sampler and
    # worker seeds: a resumed run draws what an unbroken one would
    dict(type='RNGStateHook'),
    # labels vs the head's num_classes before the run; replaced bad videos
    # logged once and summed per epoch, an error above 1 % of an epoch
    dict(type='DataCheckHook', max_bad_fraction=0.01),
    # one training run per work dir (first of all: priority HIGHEST); a
    # killed run's lock is taken over
    dict(type='WorkDirLockHook'),
    # what loads: --resume checks last_checkpoint (empty / missing file /
    # copied work dir); weights that do not fit the model are an error
    # saying what to set (partial_load=True loads what fits); the backbone's
    # `pretrained` file is not read when a checkpoint loads; a resume takes
    # --cfg-options optim_wrapper.optimizer.lr=...
    dict(type='CheckpointLoadHook'),
    # a batch of inputs of several sizes is zero-padded, which changes the
    # padded samples' scores: one warning per run naming the padded files
    # (resize in the pipeline; SizeGrouped*Loop for val / test)
    dict(type='BatchPaddingHook'),
]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
# No `randomness` here (as in mmaction2's runtime): mmaction2's tools/train.py
# applies --seed / --deterministic only to a config without one.
