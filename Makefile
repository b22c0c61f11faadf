# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv from requirements.txt (and install mmovod into it) when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO := datasets/demo
DEMO_CLIP := --clip_model $(DEMO)/clip/tiny_clip.json --pretrained $(DEMO)/clip/tiny_clip.pt

.PHONY: demo test bench clean-demo

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest

demo: $(VENV)/.installed
	@echo "CLIP steps run on the tiny random CLIP under $(DEMO)/clip (no downloads): $(DEMO_CLIP)"
	rm -rf $(DEMO)
	$(PY) tools/make_demo_data.py --out $(DEMO)
	$(PY) tools/remove_lvis_rare.py --ann $(DEMO)/lvis/lvis_v1_train.json
	$(PY) tools/get_lvis_cat_info.py --ann $(DEMO)/lvis/lvis_v1_train.json
	$(PY) tools/dump_clip_features.py --ann $(DEMO)/lvis/lvis_v1_val.json --out_path "$(DEMO)/metadata/lvis_v1_clip_a+cname.npy" $(DEMO_CLIP) --device cpu
	$(PY) tools/dump_clip_features_lvis_sentences.py --descriptions-path datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json --ann-path $(DEMO)/lvis/lvis_v1_val.json --out-path $(DEMO)/metadata/lvis_gpt3_text-davinci-002_features_own.npy $(DEMO_CLIP) --device cpu
	@echo "demo finished: outputs under $(DEMO)/"

clean-demo:
	rm -rf $(DEMO)
