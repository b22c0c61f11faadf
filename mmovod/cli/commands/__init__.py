"""The commands of `mmovod`, one module each (also run as `python tools/<name>.py`), in the order of `mmovod --help`.

Each module has `get_parser()`, `run(args)` and `main(argv=None, prog=None) -> int`. Its top level imports
only what the parser needs; `run` imports the work (torch, open_clip, ...), so `--help`, `--version` and
argument errors answer at once.
"""
from __future__ import annotations

# The datasets guide's steps, in the order they run (the guide's order, except that the collation of the
# exemplars, last in the guide as an optional rebuild, comes before the sampling that reads its output).
GUIDE_STEPS: dict[str, str] = {
    "remove_lvis_rare": "drop the rare-category annotations of LVIS train (open-vocabulary training set)",
    "create_imagenetlvis_json": "list the ImageNet-21K-P images of LVIS categories (IN-L)",
    "get_lvis_cat_info": "count images and instances per LVIS category (for the federated loss)",
    "generate_descriptions": "ask an LLM to describe every class of a vocabulary",
    "dump_clip_features_lvis_sentences": "description classifier: CLIP text embeddings of the descriptions",
    "collate_exemplar_dict": "collate each LVIS class's image exemplars (LVIS, ImageNet-21K, Visual Genome)",
    "sample_exemplars": "sample K image exemplars per LVIS class from the collated exemplar dict",
    "generate_vision_classifier_agg": "image-exemplar classifier through the trained visual aggregator",
    "get_exemplars_tta": "image-exemplar classifier by averaging the exemplars' CLIP embeddings",
    "norm_feat_sum_norm": "fuse two classifiers into a multi-modal one",
    "dump_clip_features": "class-name classifier: CLIP text embeddings of LVIS class-name prompts",
}

# Beyond the guide: your own classes, evaluation, aggregator training, assets, the demo.
MORE_TOOLS: dict[str, str] = {
    "build_classifiers": "your own classes: class list + photos -> every classifier a detector loads",
    "check_classifier": "check classifier .npy files before a detector loads them",
    "export_classifier": "hand a classifier to Detic, YOLO-World or Ultralytics (also: mmovod export)",
    "eval_classifiers": "is a classifier any good? classify a dataset's labelled boxes, no detector",
    "cache_clip_features": "encode labelled images once into a CLIP feature cache for aggregator training",
    "train_visual_aggregator": "train the visual aggregator on a feature cache",
    "eval_visual_aggregator": "evaluate a visual aggregator by class retrieval on held-out classes",
    "download_assets": "fetch the released checkpoint and metadata files, and CLIP weights",
    "models": "list the CLIP models and pretrained tags open_clip can download, marking those here",
    "make_demo_data": "write the small built-in demo dataset",
}

COMMANDS: dict[str, str] = {**GUIDE_STEPS, **MORE_TOOLS}

ALIASES: dict[str, str] = {"export": "export_classifier"}
"""Shorter names `mmovod` also accepts for a command."""
