# The headline config's short name: VideoSparseFormer-T on Kinetics-400,
# 32 frames x interval 2, R = 8 (configs/videosparseformer/README.md).
#   bash tools/dist_train.sh configs/k400.py 8
_base_ = './videosparseformer/videosparseformer-tiny_in1k-pre_8xb8-32x2x1-30e_kinetics400-rgb.py'  # noqa: E501
