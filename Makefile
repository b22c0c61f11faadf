# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install mmovod into it (editable, with its test extra; the dependencies come from
# pyproject.toml at the versions requirements.txt pins) when it is missing or stale.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO := datasets/demo
DEMO_CLIP := --clip_model $(DEMO)/clip/world_clip.json --pretrained $(DEMO)/clip/world_clip.pt
DEMO_AGG := $(DEMO)/checkpoints/world_aggregator.pth
DEMO_IMG_DIRS := --lvis-img-dir $(DEMO)/coco/ --imagenet-img-dir $(DEMO)/imagenet --visual-genome-img-dir $(DEMO)/VisualGenome/

.PHONY: demo test clean-demo

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.txt setuptools
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.txt --no-build-isolation -e ".[test]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -n auto

demo: $(VENV)/.installed
	@echo "CLIP steps run on the demo world's small trained CLIP under $(DEMO)/clip (no downloads): $(DEMO_CLIP)"
	rm -rf $(DEMO)
	$(PY) tools/make_demo_data.py --out-dir $(DEMO)
	$(PY) tools/remove_lvis_rare.py --ann $(DEMO)/lvis/lvis_v1_train.json
	$(PY) tools/get_lvis_cat_info.py --ann $(DEMO)/lvis/lvis_v1_train.json
	$(PY) tools/dump_clip_features.py --ann $(DEMO)/lvis/lvis_v1_val.json --out_path "$(DEMO)/metadata/lvis_v1_clip_a+cname.npy" $(DEMO_CLIP) --device cpu
	$(PY) tools/dump_clip_features_lvis_sentences.py --descriptions-path $(DEMO)/metadata/world_descriptions.json --ann-path $(DEMO)/lvis/lvis_v1_val.json --out-path $(DEMO)/metadata/world_descriptions_features.npy $(DEMO_CLIP) --device cpu
	mkdir -p $(DEMO)/imagenet/annotations
	$(PY) tools/create_imagenetlvis_json.py --imagenet-path $(DEMO)/imagenet/imagenet21k_P --lvis-meta-path $(DEMO)/lvis/lvis_v1_val.json --out-path $(DEMO)/imagenet/annotations/imagenet_lvis_image_info.json
	$(PY) tools/collate_exemplar_dict.py --lvis-dir $(DEMO)/lvis --imagenet-dir $(DEMO)/imagenet --visual-genome-dir $(DEMO)/VisualGenome --output-path $(DEMO)/metadata/exemplar_dict.json
	$(PY) tools/sample_exemplars.py --lvis-ann-path $(DEMO)/lvis/lvis_v1_val.json --exemplar-dict-path $(DEMO)/metadata/exemplar_dict.json -K 5 --out-path $(DEMO)/metadata/lvis_image_exemplar_dict_K-005_own.json
	$(PY) tools/get_exemplars_tta.py --ann-path $(DEMO)/metadata/lvis_image_exemplar_dict_K-005_own.json --output-path $(DEMO)/metadata/lvis_image_exemplar_features_avg_K-005_own.npy --num-augs 5 $(DEMO_IMG_DIRS) $(DEMO_CLIP) --device cpu --nw 2
	$(PY) tools/generate_vision_classifier_agg.py --exemplar-list $(DEMO)/metadata/lvis_image_exemplar_dict_K-005_own.json --out-path $(DEMO)/metadata/lvis_image_exemplar_features_agg_K-005_own.npy --num-augs 5 --tta --load-path $(DEMO_AGG) $(DEMO_IMG_DIRS) $(DEMO_CLIP) --device cpu --nw 2
	$(PY) tools/norm_feat_sum_norm.py --feat1-path $(DEMO)/metadata/world_descriptions_features.npy --feat2-path $(DEMO)/metadata/lvis_image_exemplar_features_agg_K-005_own.npy --out-path $(DEMO)/metadata/lvis_multi-modal_agg_K-005_own.npy
	$(PY) tools/norm_feat_sum_norm.py --feat1-path $(DEMO)/metadata/world_descriptions_features.npy --feat2-path $(DEMO)/metadata/lvis_image_exemplar_features_avg_K-005_own.npy --out-path $(DEMO)/metadata/lvis_multi-modal_avg_K-005_own.npy
	$(PY) tools/cache_clip_features.py --image-root $(DEMO)/aggregator_images --exclude-classes $(DEMO)/aggregator_images_heldout.txt --out-dir $(DEMO)/aggregator_cache_train --views 2 --tta --shard-size 32 --nw 2 $(DEMO_CLIP) --device cpu
	$(PY) tools/cache_clip_features.py --image-root $(DEMO)/aggregator_images --classes $(DEMO)/aggregator_images_heldout.txt --out-dir $(DEMO)/aggregator_cache_heldout --views 2 --tta --nw 2 $(DEMO_CLIP) --device cpu
	$(PY) tools/train_visual_aggregator.py --cache $(DEMO)/aggregator_cache_train --out-dir $(DEMO)/checkpoints/aggregator_run --steps 30 --batch-classes 8 --k-max 3 --warmup-steps 5 --num-layers 1 --checkpoint-every 15 $(DEMO_CLIP) --device cpu
	$(PY) tools/eval_visual_aggregator.py --cache $(DEMO)/aggregator_cache_heldout --load-path $(DEMO)/checkpoints/aggregator_run/visual_aggregator.pth --num-layers 1 --out-path $(DEMO)/metadata/aggregator_eval_heldout.json --ks 1 2 5 --queries 2 --trials 3 --device cpu
	$(PY) tools/build_classifiers.py --vocab $(DEMO)/custom/vocab.txt --exemplars $(DEMO)/custom/exemplars --out-dir $(DEMO)/custom/classifiers --load-path $(DEMO_AGG) --export multi-modal-average --report --judge $(DEMO_CLIP) --device cpu --nw 2
	$(PY) tools/check_classifier.py $(DEMO)/custom/classifiers/multi-modal-average.npy $(DEMO)/custom/classifiers/multi-modal-aggregated.npy --clip_model $(DEMO)/clip/world_clip.json --vocab $(DEMO)/custom/vocab.txt
	$(PY) tools/export_classifier.py $(DEMO)/metadata/lvis_multi-modal_agg_K-005_own.npy --format yolo-world --out-path $(DEMO)/metadata/lvis_multi-modal_agg_K-005_own_yolo-world.npy
	$(PY) tools/eval_classifiers.py --classifiers $(DEMO)/metadata/lvis_v1_clip_a+cname.npy $(DEMO)/metadata/world_descriptions_features.npy $(DEMO)/metadata/lvis_image_exemplar_features_avg_K-005_own.npy $(DEMO)/metadata/lvis_image_exemplar_features_agg_K-005_own.npy $(DEMO)/metadata/lvis_multi-modal_avg_K-005_own.npy $(DEMO)/metadata/lvis_multi-modal_agg_K-005_own.npy --ann $(DEMO)/lvis/lvis_v1_val.json --img-dir $(DEMO)/coco/ --out-dir $(DEMO)/eval --report --device cpu --nw 2
	$(PY) tools/download_assets.py --list
	$(PY) tools/models.py --here
	@echo "demo finished: outputs under $(DEMO)/ (your-own-classes report: $(DEMO)/custom/classifiers/report/index.html)"

clean-demo:
	rm -rf $(DEMO)
