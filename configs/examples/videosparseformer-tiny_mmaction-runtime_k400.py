# A config assembled from an mmaction2 base (its runtime, resolved from the
# installed package) and this project's model / dataset / schedule bases.
# Bases may not define the same keys, so take either our video runtime or
# mmaction2's, not both.
_base_ = [
    'mmaction::_base_/default_runtime.py',
    '../_base_/models/videosparseformer-tiny.py',
    '../_base_/datasets/kinetics400_32x2x1_video.py',
    '../_base_/schedules/adamw_warmup_cosine_30e.py',
]
custom_imports = dict(imports=['sparseformer_mm'], allow_failed_imports=False)
# mmaction2's runtime has no custom hooks: ours, as in _base_/video_runtime.py
custom_hooks = [dict(type='SamplingGradScaleHook'),
                dict(type='RNGStateHook'),
                dict(type='SkipPretrainedOnLoadHook'),
                dict(type='DataCheckHook', max_bad_fraction=0.01),
                dict(type='NonFiniteLossHook', action='raise'),
                dict(type='WorkDirLockHook'),
                dict(type='ResumeCheckHook'),
                dict(type='CheckpointFitHook'),
                dict(type='BatchPaddingHook', max_factor=4.0)]
# mmaction2's own runtime has no visualization hook, which tools/test.py
# (ours and mmaction2's) expects for --show-dir, and its CheckpointHook deletes the oldest checkpoint before writing the
# new one: ours (same options) only after.
default_hooks = dict(visualization=dict(type='VisualizationHook',
                                        enable=False),
                     checkpoint=dict(type='SafeCheckpointHook'))
