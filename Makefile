# make install | test | test-fast | demo | clean.  VENV=path overrides the environment.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.sparseformer_mm-installed
IMAGE_WORK_DIR ?= work_dirs/demo_image
VIDEO_WORK_DIR ?= work_dirs/demo_video
IMAGE_CFG := configs/demo/sparseformer-nano_1xb32-8e_shapes.py
VIDEO_CFG := configs/demo/videosparseformer-nano_1xb16-4x8x1-6e_motion.py

.PHONY: install test test-fast demo demo-image demo-video demo-bootstrap experiment benchmark clean

install: $(STAMP)

$(STAMP): setup.py requirements/*.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements/torch.txt
	$(PY) -c "import mmcv" 2>/dev/null || $(PIP) install -q -r requirements/mmcv.txt
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-deps -e .
	$(PY) -c "import sparseformer_mm, mmaction.models, mmpretrain.models, torchvision, decord, av; print('sparseformer_mm', sparseformer_mm.__version__, 'installed in $(VENV)')"
	touch $@

# Everything (CI), tests/ and projects/*/tests (pytest.ini's testpaths).
test: install
	$(PY) -m pytest

# The inner loop: all but the process-level tests marked slow.
test-fast: install
	$(PY) -m pytest -m "not slow"

# The main job: a VideoSparseFormer learns motion direction on generated
# mp4 clips, starting from the image demo's SparseFormer (inflated to tubes).
demo: demo-video

demo-image: install
	$(PY) tools/data/make_synthetic_images.py data/demo/shapes
	$(PY) tools/train.py $(IMAGE_CFG) --work-dir $(IMAGE_WORK_DIR)
	$(PY) tools/test.py $(IMAGE_CFG) "$$(cat $(IMAGE_WORK_DIR)/last_checkpoint)" --work-dir $(IMAGE_WORK_DIR)

demo-video: demo-image
	$(PY) tools/data/make_synthetic_videos.py data/demo/motion
	$(PY) tools/train.py $(VIDEO_CFG) --work-dir $(VIDEO_WORK_DIR) \
		--cfg-options model.backbone.pretrained="$$(cat $(IMAGE_WORK_DIR)/last_checkpoint)"
	$(PY) tools/test.py $(VIDEO_CFG) "$$(cat $(VIDEO_WORK_DIR)/last_checkpoint)" --work-dir $(VIDEO_WORK_DIR)
	@echo "image demo (shapes): logs and checkpoints in $(IMAGE_WORK_DIR)/"
	@echo "video demo (motion): logs and checkpoints in $(VIDEO_WORK_DIR)/"

# Bootstrapping on a CPU: a small ViT trained with labels,
# a SparseFormer bootstrapped from it without labels, a labelled v1
# SparseFormer for the same wall time, then video; data/demo is made if
# missing (projects/bootstrapping/README.md).
demo-bootstrap: install
	$(PY) -m projects.bootstrapping.bootstrap_demo --out work_dirs/demo_bootstrap

# Foreground focus at init vs trained, and video from image weights vs from
# scratch (projects/focus_and_pretraining/README.md). CPU; results in
# work_dirs/exp_focus_pretraining/
experiment: install
	$(PY) -m projects.focus_and_pretraining.focus_and_pretraining --out work_dirs/exp_focus_pretraining

# Speed and memory against dense peers (about 10 min on a 2-core CPU);
# rewrites docs/benchmarks.md and its plots, and docs/decoding.md
# (projects/benchmarks/README.md).
benchmark: install
	$(PY) -m projects.benchmarks.benchmark --doc docs/benchmarks.md
	$(PY) -m projects.benchmarks.data_benchmark --doc docs/decoding.md

# What only a GPU runs (benchmark GPU group, 50 AMP iterations of the K400
# tiny config in fp16 / bf16, one-GPU dist_train.sh over NCCL, torch.compile,
# 5-D grid_sample in fp16) in under 8 minutes; without a GPU the CPU
# mixed-precision trainings. Rewrites its section of docs/gpu_check.md.
.PHONY: gpu-check
gpu-check: install
	$(PY) -m tools.gpu_check --doc docs/gpu_check.md

clean:
	rm -rf $(VENV) work_dirs data/demo
