# VideoSparseFormer-T on Kinetics-400: 32 frames x interval 2, R = 8 tube
# replicas (392 tokens), initialised from an ImageNet SparseFormer-T.
#   bash tools/dist_train.sh configs/k400.py 8
# The paper's K400 recipe is not fully public; this schedule is ours.
_base_ = [
    '_base_/models/videosparseformer-tiny.py',
    '_base_/datasets/kinetics400_32x2x1_decord.py',
    '_base_/schedules/adamw_warmup_cosine_30e.py',
    '_base_/video_runtime.py',
]
