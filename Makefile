# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv from requirements.txt (and install mmovod into it) when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO := datasets/demo

.PHONY: demo test bench clean-demo

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(PY) tools/make_demo_data.py --out $(DEMO)
	$(PY) tools/remove_lvis_rare.py --ann $(DEMO)/lvis/lvis_v1_train.json
	$(PY) tools/get_lvis_cat_info.py --ann $(DEMO)/lvis/lvis_v1_train.json
	mkdir -p $(DEMO)/imagenet/annotations
	$(PY) tools/create_imagenetlvis_json.py --imagenet-path $(DEMO)/imagenet/imagenet21k_P --lvis-meta-path $(DEMO)/lvis/lvis_v1_val.json --out-path $(DEMO)/imagenet/annotations/imagenet_lvis_image_info.json
	$(PY) tools/collate_exemplar_dict.py --lvis-dir $(DEMO)/lvis --imagenet-dir $(DEMO)/imagenet --visual-genome-dir $(DEMO)/VisualGenome --output-path $(DEMO)/metadata/exemplar_dict.json
	$(PY) tools/sample_exemplars.py --lvis-ann-path $(DEMO)/lvis/lvis_v1_val.json --exemplar-dict-path $(DEMO)/metadata/exemplar_dict.json -K 5 --out-path $(DEMO)/metadata/lvis_image_exemplar_dict_K-005_own.json
	@echo "demo finished: outputs under $(DEMO)/"

clean-demo:
	rm -rf $(DEMO)
