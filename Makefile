# make install | test | demo | clean.  VENV=path overrides the environment.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.sparseformer_mm-installed
WORK_DIR ?= work_dirs/demo
DEMO_CFG := configs/demo/sparseformer-nano_1xb32-6e_shapes.py

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): setup.py requirements/*.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -r requirements/torch.txt
	$(PY) -c "import mmcv" 2>/dev/null || $(PIP) install -q -r requirements/mmcv.txt
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-deps -e .
	$(PY) -c "import sparseformer_mm, mmaction.models, mmpretrain.models, torchvision, decord; print('sparseformer_mm', sparseformer_mm.__version__, 'installed in $(VENV)')"
	touch $@

test: install
	$(PY) -m pytest tests

demo: install
	$(PY) tools/data/make_synthetic_images.py data/demo/shapes
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(WORK_DIR)
	$(PY) tools/test.py $(DEMO_CFG) "$$(cat $(WORK_DIR)/last_checkpoint)" --work-dir $(WORK_DIR)
	@echo "logs, scalars.json and checkpoints: $(WORK_DIR)/"

clean:
	rm -rf $(VENV) work_dirs data/demo
