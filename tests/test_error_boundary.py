"""The error boundary of every tool: a catalogue of bad inputs and faults, each ending in one line.

Every case runs a tool's `main([...])` in-process on tiny generated files with one thing broken and
checks the contract (`bad_input` in tests/conftest.py): exit 2, exactly one `<tool>.py: error: ...`
line naming the file, no traceback, no output written and an earlier good output byte-identical.
The classes: code execution from a checkpoint, output targets (a folder, a name not in UTF-8, a
missing or unwritable folder, a disk that fills up), decoding (non-UTF-8, not JSON, empty or random checkpoints, huge image
headers, a damaged cache index), values the numerics reject (negative boxes, counts), duplicate
category ids, a training restart without --resume, and missing files. Server answers are checked
against a local HTTP server at the end.
"""
import datetime
import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from mmovod.features.feature_cache import write_array_cache
from mmovod.aggregator.model import VisualAggregator
from mmovod.descriptions.description_cache import cache_path_for
from mmovod.descriptions.recipe import clean_sample, describe_prompt
from mmovod.classifiers.text_inputs import description_key
from mmovod.demo.world_models import tiny_clip_config_path
from mmovod.demo.dataset import demo_categories
from tests.tiers import quick_once
from tests.aggregator_toy import TOY_CLIP, gaussian_classes
from tests.fakes import KEY, fake_text
from tools import (
    cache_clip_features, collate_exemplar_dict, create_imagenetlvis_json, dump_clip_features,
    dump_clip_features_lvis_sentences, eval_visual_aggregator, generate_descriptions, generate_vision_classifier_agg,
    get_exemplars_tta, get_lvis_cat_info, make_demo_data, norm_feat_sum_norm, remove_lvis_rare, sample_exemplars,
    train_visual_aggregator,
)

GOOD = b"the output of an earlier good run\n"
CATS = [c for c in demo_categories() if c["id"] in (1, 2, 13)]  # aerosol can (c), air conditioner (f), applesauce (r)
WNID = "n02682922"  # aerosol.n.02
LVIS_FILE = "train2017/000000000001.jpg"


class CodeOnLoad:
    """Pickles as a call of `open(marker, "w")`: unpickling it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def jpeg(path, size=(40, 30), colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def bomb_png(path):
    """A valid 1x1 PNG whose header claims 60000 x 60000 pixels (PIL refuses it as a decompression bomb)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
                     + chunk(b"IEND", b""))
    return path


def lvis_doc(cats=CATS):
    images = [{"id": 1, "coco_url": f"http://images.cocodataset.org/{LVIS_FILE}", "width": 40, "height": 30,
               "pos_category_ids": [c["id"] for c in cats]}]
    anns = [{"id": i + 1, "image_id": 1, "category_id": c["id"], "bbox": [1.0, 1.0, 35.0, 33.0], "area": 1155.0,
             "segmentation": [[1, 1, 36, 1, 36, 34]]} for i, c in enumerate(cats)]
    return {"info": {}, "images": images, "annotations": anns, "categories": cats}


def write_json(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny good inputs for every tool; cases copy one of them and break the copy."""
    root = tmp_path_factory.mktemp("world")
    w = SimpleNamespace(root=root)
    w.ann = write_json(root / "lvis/lvis_v1_val.json", lvis_doc())
    write_json(root / "lvis/lvis_v1_train.json", lvis_doc())
    w.lvis_dir = root / "lvis"
    jpeg(root / "coco" / LVIS_FILE)
    jpeg(root / f"imagenet/imagenet21k_P/train/{WNID}/{WNID}_1.JPEG")
    w.imagenet = root / "imagenet"
    w.vg = root / "VisualGenome"
    jpeg(w.vg / "VG_100K/1.jpg")
    write_json(w.vg / "objects.json", [{"image_id": 1, "objects": [
        {"object_id": 1, "x": 0, "y": 0, "w": 40, "h": 40, "synsets": ["air_conditioner.n.01"], "names": ["ac"]}]}])
    write_json(w.vg / "image_data.json", [{"image_id": 1, "url": "https://cs.stanford.edu/VG_100K/1.jpg"}])
    records = {c["synset"]: [{"dataset": "lvis", "file_name": LVIS_FILE, "bbox": [1.0, 1.0, 20.0, 20.0],
                              "category_id": c["id"], "synset": c["synset"]},
                             {"dataset": "imagenet21k", "file_name": f"imagenet21k_P/train/{WNID}/{WNID}_1.JPEG",
                              "category_id": c["id"], "synset": c["synset"]}] for c in CATS}
    w.exemplar_dict = write_json(root / "exemplar_dict.json", records)
    w.exemplar_list = write_json(root / "exemplar_list.json", [recs[:1] for recs in records.values()])
    w.roots = ["--lvis-img-dir", str(root / "coco"), "--imagenet-img-dir", str(w.imagenet),
               "--visual-genome-img-dir", str(w.vg)]
    w.descriptions = write_json(root / "descriptions.json", {description_key(c): ["A thing."] for c in CATS})
    w.clip_config = root / "clip/tiny_clip.json"
    w.clip_config.parent.mkdir()
    shutil.copy(tiny_clip_config_path(), w.clip_config)
    w.clip = ["--clip_model", str(w.clip_config), "--pretrained", "none", "--device", "cpu"]
    torch.manual_seed(0)
    w.aggregator = root / "aggregator.pth"  # for the 32-d toy cache
    torch.save({"state_dict": VisualAggregator(dim=32, num_layers=1).state_dict()}, w.aggregator)
    w.aggregator_512 = root / "aggregator_512.pth"  # for the tiny CLIP
    torch.save({"state_dict": VisualAggregator(dim=512, num_layers=1).state_dict()}, w.aggregator_512)
    w.cache = write_array_cache(root / "cache", gaussian_classes(0, 4, 5, dim=32), TOY_CLIP, shard_size=100)
    w.classes = root / "classes.txt"
    w.classes.write_text("c000\nc001\n")
    rng = np.random.default_rng(0)
    w.feat1, w.feat2 = root / "feat1.npy", root / "feat2.npy"
    np.save(w.feat1, rng.normal(size=(3, 8)).astype(np.float32))
    np.save(w.feat2, rng.normal(size=(3, 8)).astype(np.float32))
    for name in ("t0", "t1"):
        for i in range(2):
            jpeg(root / f"tree/{name}/{i}.jpg", colour=(i * 90, 40, 200))
    w.tree = root / "tree"
    return w


# Each tool's good command line, given the world and the output path; outputs are files except where
# OUT_FOLDERS says the tool writes a folder.
TOOLS: dict[str, Callable] = {
    "remove_lvis_rare": lambda w, o: ["--ann", w.ann, "--out", o],
    "get_lvis_cat_info": lambda w, o: ["--ann", w.ann, "--out", o],
    "create_imagenetlvis_json": lambda w, o: ["--imagenet-path", w.imagenet, "--lvis-meta-path", w.ann,
                                              "--out-path", o, "--workers", "1"],
    "collate_exemplar_dict": lambda w, o: ["--lvis-dir", w.lvis_dir, "--imagenet-dir", w.imagenet,
                                           "--visual-genome-dir", w.vg, "--output-path", o],
    "sample_exemplars": lambda w, o: ["--lvis-ann-path", w.ann, "--exemplar-dict-path", w.exemplar_dict, "-K", "1",
                                      "--out-path", o],
    "dump_clip_features": lambda w, o: ["--ann", w.ann, "--out_path", o, *w.clip],
    "dump_clip_features_lvis_sentences": lambda w, o: ["--descriptions-path", w.descriptions, "--ann-path", w.ann,
                                                       "--out-path", o, *w.clip],
    "get_exemplars_tta": lambda w, o: ["--ann-path", w.exemplar_list, "--output-path", o, "--num-augs", "1", "--nw", "0",
                                       *w.roots, *w.clip],
    "generate_vision_classifier_agg": lambda w, o: ["--exemplar-list", w.exemplar_list, "--out-path", o, "--load-path",
                                                    w.aggregator_512, "--num-layers", "1", "--num-augs", "1", "--nw", "0",
                                                    *w.roots, *w.clip],
    "norm_feat_sum_norm": lambda w, o: ["--feat1-path", w.feat1, "--feat2-path", w.feat2, "--out-path", o],
    "cache_clip_features": lambda w, o: ["--exemplar-dict", w.exemplar_dict, "--out", o, "--nw", "0", "--min-images", "1",
                                         *w.roots, *w.clip],
    "train_visual_aggregator": lambda w, o: ["--cache", w.cache, "--out", o, "--steps", "2", "--batch-classes", "2",
                                             "--k-max", "2", "--num-layers", "1", "--device", "cpu"],
    "eval_visual_aggregator": lambda w, o: ["--cache", w.cache, "--load-path", w.aggregator, "--num-layers", "1",
                                            "--out-path", o, "--ks", "1", "--queries", "1", "--trials", "1",
                                            "--device", "cpu"],
    "generate_descriptions": lambda w, o: ["--ann-path", w.ann, "--output-path", o, "--openai-model", "chat-test",
                                           "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"],
    "make_demo_data": lambda w, o: ["--out", o],
}
MODULES = {name: globals()[name] for name in TOOLS}
OUT_FOLDERS = {"cache_clip_features", "train_visual_aggregator", "make_demo_data"}
CLASSIFIER_TOOLS = ["dump_clip_features", "dump_clip_features_lvis_sentences", "get_exemplars_tta",
                    "generate_vision_classifier_agg", "norm_feat_sum_norm"]
CLIP_TOOLS = ["dump_clip_features", "dump_clip_features_lvis_sentences", "get_exemplars_tta",
              "generate_vision_classifier_agg", "cache_clip_features"]
# where each tool reads an aggregator or training checkpoint
CHECKPOINT_FLAGS = [("generate_vision_classifier_agg", "--load-path"), ("eval_visual_aggregator", "--load-path"),
                    ("train_visual_aggregator", "--resume")]


def with_flag(argv, flag, value):
    """`argv` with `flag`'s value replaced (or the flag appended; a None value drops the flag)."""
    argv = list(argv)
    if flag in argv:
        i = argv.index(flag)
        del argv[i:i + 2]
    return argv if value is None else [*argv, flag, value]


@dataclass
class Case:
    tool: str
    name: str
    make: Callable  # (world, case folder, monkeypatch) -> (argv edits {flag: value}, needle)
    resumable: bool = False  # the tool keeps resumable state (cache index, training log) after a late failure

    @property
    def id(self):
        return f"{self.tool}-{self.name}"


def copy_with(src, dst, edit):
    """Write `edit(bytes of src)` to `dst` (same file name in another folder when dst is a folder)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(edit(Path(src).read_bytes()))
    return dst


def not_utf8(data: bytes) -> bytes:
    """The document with two bytes that are not UTF-8 inside its last string (a value a partial decoder
    may never look at)."""
    at = data.rindex(b'"')
    return data[:at] + b"\xff\xfe" + data[at:]


# --- code execution from a checkpoint -------------------------------------------------------------

def code_checkpoint(d):
    path = d / "crafted.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": CodeOnLoad(d / "MARKER")}, path)
    return path


CASES = []
for tool, flag in [*CHECKPOINT_FLAGS, *((t, "--pretrained") for t in CLIP_TOOLS)]:
    CASES.append(Case(tool, f"code-in{flag}", lambda w, d, mp, flag=flag: (
        {flag: code_checkpoint(d)}, "holds io.open, a type whose unpickling could run code")))
    CASES.append(Case(tool, f"empty{flag}", lambda w, d, mp, flag=flag: (
        {flag: copy_with(w.ann, d / "empty.pth", lambda b: b"")}, "is empty (0 bytes)")))
    CASES.append(Case(tool, f"random{flag}", lambda w, d, mp, flag=flag: (
        {flag: copy_with(w.ann, d / "random.pth", lambda b: np.random.default_rng(1).bytes(300))}, "not a readable")))
CASES += [Case(t, "random-safetensors", lambda w, d, mp: (
    {"--pretrained": copy_with(w.ann, d / "x.safetensors", lambda b: b"\x08" + bytes(300))}, "not a readable CLIP"))
    for t in CLIP_TOOLS]

def spoiled_aggregator(src, dst, spoil):
    """A copy of the aggregator checkpoint `src` at `dst` with its state dict changed by `spoil(state)`."""
    state = torch.load(src, weights_only=True)["state_dict"]
    spoil(state)
    torch.save({"state_dict": state}, dst)
    return dst


SPOILED_WEIGHTS = [  # (name, spoil(state), words the error line holds)
    ("nan-weights", lambda s: s["mapper.linear.weight"].view(-1)[3:5].fill_(float("nan")),
     "mapper.linear.weight holds NaN or infinite values"),
    ("cls-token-shape", lambda s: s.update({"mapper.cls_token": torch.zeros(3, 3)}),
     "mapper.cls_token has shape [3, 3], expected [1, dim]"),
    ("integer-weights", lambda s: s.update({k: v.long() for k, v in s.items()}), "holds torch.int64 values"),
]


def nan_clip(w, d):
    """The tiny CLIP's weights with NaN in its positional embedding (every embedding would be NaN)."""
    from mmovod.demo.world_models import save_random_checkpoint

    logging.disable(logging.WARNING)  # open_clip's "no pretrained weights" warning, to a stream an earlier tool set
    try:
        save_random_checkpoint(w.clip_config, d / "clip.pt")
    finally:
        logging.disable(logging.NOTSET)
    state = torch.load(d / "clip.pt", weights_only=True)
    state = state.get("state_dict", state)
    state["positional_embedding"][0, 0] = float("nan")
    torch.save(state, d / "nan_clip.pt")
    return d / "nan_clip.pt"


CASES += [Case(t, "nan-weights--pretrained", lambda w, d, mp: (
    {"--pretrained": nan_clip(w, d)}, "nan_clip.pt: CLIP checkpoint tensor positional_embedding holds NaN"))
    for t in CLIP_TOOLS]
for tool, attr in [("generate_vision_classifier_agg", "aggregator_512"), ("eval_visual_aggregator", "aggregator")]:
    CASES += [Case(tool, f"aggregator-{name}", lambda w, d, mp, attr=attr, spoil=spoil, needle=needle: (
        {"--load-path": spoiled_aggregator(getattr(w, attr), d / "spoiled.pth", spoil)}, needle))
        for name, spoil, needle in SPOILED_WEIGHTS]



# --- output targets ------------------------------------------------------------------------------

def deny_writes_into(mp, folder):
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    mp.setattr(os, "access", access)


def disk_full(mp):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    mp.setattr(os, "fsync", fsync)


for tool in TOOLS:
    folder_out = tool in OUT_FOLDERS
    if tool == "make_demo_data":  # makes missing parents (the first command on a fresh clone)
        CASES.append(Case(tool, "output-parent-is-a-file", lambda w, d, mp: (
            {"out": copy_with(w.ann, d / "out" / "file", lambda b: GOOD) / "demo"}, "file is a file, expected a folder")))
    else:
        CASES.append(Case(tool, "output-folder-missing", lambda w, d, mp: (
            {"out": d / "nowhere" / "x"}, "does not exist")))
    CASES.append(Case(tool, "output-folder-unwritable", lambda w, d, mp: (
        deny_writes_into(mp, d / "out"), {}, "cannot write into")[1:]))
    if folder_out:
        CASES.append(Case(tool, "output-is-a-file", lambda w, d, mp: (
            {"out": copy_with(w.ann, d / "out" / "x", lambda b: GOOD)}, "is a file, expected an output folder")))
    else:
        CASES.append(Case(tool, "output-is-a-folder", lambda w, d, mp: (
            (d / "out" / "x").mkdir(), {}, "is a folder, expected an output file")[1:]))
    if tool != "make_demo_data":  # a demo tree cannot be written atomically; its up-front checks are above
        CASES.append(Case(tool, "disk-full", lambda w, d, mp: (disk_full(mp), {}, "No space left on device")[1:],
                          resumable=folder_out))
    # a path given in another encoding: the sidecars and manifests hold it as JSON text, which is UTF-8
    CASES.append(Case(tool, "output-name-not-utf8", lambda w, d, mp: (
        {"out": d / "out" / os.fsdecode(b"caf\xe9")}, "out/caf\\xe9: not UTF-8")))
# the output named as one of the tool's inputs: refused before it is read, the input left as it was
INPUT_FLAGS = [("remove_lvis_rare", "--ann", "ann"), ("get_lvis_cat_info", "--ann", "ann"),
               ("create_imagenetlvis_json", "--lvis-meta-path", "ann"),
               ("sample_exemplars", "--exemplar-dict-path", "exemplar_dict"), ("dump_clip_features", "--ann", "ann"),
               ("dump_clip_features_lvis_sentences", "--descriptions-path", "descriptions"),
               ("get_exemplars_tta", "--ann-path", "exemplar_list"),
               ("generate_vision_classifier_agg", "--load-path", "aggregator_512"),
               ("norm_feat_sum_norm", "--feat2-path", "feat2"), ("eval_visual_aggregator", "--classes", "classes")]
for tool, flag, attr in INPUT_FLAGS:
    CASES.append(Case(tool, f"output-is-the-input{flag}", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: copy_with(getattr(w, attr), d / "out" / "x", lambda b: b)}, "x: is also an input of this command")))
for tool in CLASSIFIER_TOOLS:
    CASES.append(Case(tool, "sidecar-is-a-folder", lambda w, d, mp: (
        (d / "out" / "x.json").mkdir(), {}, "x.json: is a folder")[1:]))


# --- decoding ------------------------------------------------------------------------------------

JSON_INPUTS = [  # (tool, flag, world attribute of the good file)
    ("remove_lvis_rare", "--ann", "ann"), ("get_lvis_cat_info", "--ann", "ann"),
    ("create_imagenetlvis_json", "--lvis-meta-path", "ann"), ("sample_exemplars", "--lvis-ann-path", "ann"),
    ("sample_exemplars", "--exemplar-dict-path", "exemplar_dict"), ("dump_clip_features", "--ann", "ann"),
    ("dump_clip_features_lvis_sentences", "--descriptions-path", "descriptions"),
    ("dump_clip_features_lvis_sentences", "--ann-path", "ann"), ("get_exemplars_tta", "--ann-path", "exemplar_list"),
    ("generate_vision_classifier_agg", "--exemplar-list", "exemplar_list"),
    ("cache_clip_features", "--exemplar-dict", "exemplar_dict"), ("cache_clip_features", "--lvis-ann", "ann"),
    ("generate_descriptions", "--ann-path", "ann"),
]
for tool, flag, attr in JSON_INPUTS:
    CASES.append(Case(tool, f"not-utf8{flag}", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: copy_with(getattr(w, attr), d / "bad.json", not_utf8)}, "bad.json: ")))
    CASES.append(Case(tool, f"empty{flag}", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: copy_with(getattr(w, attr), d / "bad.json", lambda b: b"")}, "bad.json: ")))
    CASES.append(Case(tool, f"missing{flag}", lambda w, d, mp, flag=flag: (
        {flag: d / "absent.json"}, "absent.json: ")))
    CASES.append(Case(tool, f"wrong-json-type{flag}", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: copy_with(getattr(w, attr), d / "bad.json", lambda b: b"42")}, "bad.json: ")))


def lvis_folder(w, d, name, edit):
    """A copy of the world's LVIS folder with `name` edited (collate reads <dir>/lvis_v1_train.json)."""
    folder = d / "lvis"
    shutil.copytree(w.lvis_dir, folder)
    copy_with(w.lvis_dir / name, folder / name, edit)
    return folder


def vg_folder(w, d, name, edit):
    """A copy of the world's Visual Genome folder with `name` edited (or removed when `edit` is None)."""
    folder = d / "vg"
    shutil.copytree(w.vg, folder)
    if edit is None:
        (folder / name).unlink()
    else:
        copy_with(w.vg / name, folder / name, edit)
    return folder


CASES += [
    Case("get_lvis_cat_info", "not-utf8-bypass", lambda w, d, mp: (
        {"--ann": copy_with(w.ann, d / "bad.json", not_utf8), "--bypass": None}, "bad.json: not valid JSON")),
    Case("collate_exemplar_dict", "not-utf8-lvis-train", lambda w, d, mp: (
        {"--lvis-dir": lvis_folder(w, d, "lvis_v1_train.json", not_utf8)}, "lvis_v1_train.json: not valid JSON")),
    Case("collate_exemplar_dict", "empty-lvis-train", lambda w, d, mp: (
        {"--lvis-dir": lvis_folder(w, d, "lvis_v1_train.json", lambda b: b"")}, "lvis_v1_train.json: ")),
    Case("collate_exemplar_dict", "not-utf8-vg-objects", lambda w, d, mp: (
        {"--visual-genome-dir": vg_folder(w, d, "objects.json", not_utf8)}, "objects.json: not valid JSON")),
    Case("collate_exemplar_dict", "not-utf8-vg-images", lambda w, d, mp: (
        {"--visual-genome-dir": vg_folder(w, d, "image_data.json", not_utf8)}, "image_data.json: not valid JSON")),
    Case("collate_exemplar_dict", "missing-vg-objects", lambda w, d, mp: (
        {"--visual-genome-dir": vg_folder(w, d, "objects.json", None)}, "objects.json: Visual Genome file not found")),
]
for tool in CLIP_TOOLS:
    CASES.append(Case(tool, "clip-config-not-json", lambda w, d, mp: (
        {"--clip_model": copy_with(w.ann, d / "model.json", lambda b: b"embed_dim: 512\n")}, "model.json: not valid JSON")))
    CASES.append(Case(tool, "clip-config-not-utf8", lambda w, d, mp: (
        {"--clip_model": copy_with(w.clip_config, d / "model.json", not_utf8)}, "model.json: not valid JSON")))
    CASES.append(Case(tool, "clip-config-not-a-model", lambda w, d, mp: (
        {"--clip_model": copy_with(w.ann, d / "model.json", lambda b: b'{"embed_dim": 8}')},
        "model.json: not an open_clip model config")))
for tool, flag in [("cache_clip_features", "--classes"), ("cache_clip_features", "--exclude-classes"),
                   ("eval_visual_aggregator", "--classes")]:
    CASES.append(Case(tool, f"not-utf8{flag}", lambda w, d, mp, flag=flag: (
        {flag: copy_with(w.classes, d / "names.txt", lambda b: b"c000\n\xffc001\n")}, "names.txt: class list is not UTF-8")))
    CASES.append(Case(tool, f"missing{flag}", lambda w, d, mp, flag=flag: ({flag: d / "names.txt"}, "names.txt: ")))


def exemplar_file(w, d, attr, edit_record):
    """A copy of the exemplar list or dictionary whose first record is edited (and its image made, if new)."""
    doc = json.loads(getattr(w, attr).read_text())
    first = doc[0][0] if isinstance(doc, list) else next(iter(doc.values()))[0]
    edit_record(first)
    return write_json(d / f"{attr}.json", doc)


def bomb_record(w, d):
    def edit(record):
        record["file_name"] = "train2017/bomb.png"
        bomb_png(d / "coco" / record["file_name"])
        shutil.copy(w.root / "coco" / LVIS_FILE, d / "coco" / LVIS_FILE)
    return edit


for tool, flag, attr in [("get_exemplars_tta", "--ann-path", "exemplar_list"),
                         ("generate_vision_classifier_agg", "--exemplar-list", "exemplar_list"),
                         ("cache_clip_features", "--exemplar-dict", "exemplar_dict")]:
    CASES.append(Case(tool, "decompression-bomb-image", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: exemplar_file(w, d, attr, bomb_record(w, d)), "--lvis-img-dir": d / "coco"}, "bomb.png: cannot read image"),
        resumable=tool == "cache_clip_features"))
    CASES.append(Case(tool, "negative-box", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: exemplar_file(w, d, attr, lambda r: r.update(bbox=[1.0, 1.0, -20.0, 20.0]))},
        "box width -20.0 and height 20.0 must not be negative")))
    CASES.append(Case(tool, "missing-image", lambda w, d, mp, flag=flag, attr=attr: (
        {flag: exemplar_file(w, d, attr, lambda r: r.update(file_name="train2017/absent.jpg"))},
        "absent.jpg"), resumable=tool == "cache_clip_features"))
CASES.append(Case("create_imagenetlvis_json", "decompression-bomb-strict", lambda w, d, mp: (
    shutil.copytree(w.imagenet, d / "imagenet"), bomb_png(d / f"imagenet/imagenet21k_P/train/{WNID}/{WNID}_2.JPEG"),
    {"--imagenet-path": d / "imagenet", "--strict": ""}, f"1 unreadable images (train/{WNID}/{WNID}_2.JPEG)")[2:]))


def cache_with_index(w, d, edit):
    """A copy of the world's feature cache whose index.json bytes are edited."""
    cache = d / "cache"
    shutil.copytree(w.cache, cache)
    copy_with(cache / "index.json", cache / "index.json", edit)
    return cache


def damaged_cache(w, d, edit):
    """A copy of the world's feature cache whose decoded index is edited in place by `edit`."""
    def rewrite(data):
        index = json.loads(data)
        edit(index)
        return json.dumps(index).encode()
    return cache_with_index(w, d, rewrite)


for tool in ("train_visual_aggregator", "eval_visual_aggregator"):
    CASES += [
        Case(tool, "cache-index-missing-key", lambda w, d, mp: (
            {"--cache": damaged_cache(w, d, lambda i: i.pop("class_offsets"))}, "field 'class_offsets' missing")),
        Case(tool, "cache-index-mistyped", lambda w, d, mp: (
            {"--cache": damaged_cache(w, d, lambda i: i.update(dim="512"))}, "field 'dim' has a wrong value '512'")),
        Case(tool, "cache-index-not-utf8", lambda w, d, mp: (
            {"--cache": cache_with_index(w, d, not_utf8)}, "index.json: not valid JSON")),
        Case(tool, "cache-missing", lambda w, d, mp: ({"--cache": d / "nocache"}, "feature cache folder not found")),
    ]


# --- values the numerics reject ------------------------------------------------------------------

CASES += [
    Case("sample_exemplars", "negative-lvis-width", lambda w, d, mp: (
        {"--exemplar-dict-path": exemplar_file(w, d, "exemplar_dict", lambda r: r.update(bbox=[1.0, 1.0, -20.0, 5.0]))},
        "exemplar #0 of aerosol.n.02 (dataset 'lvis') has box width -20.0 and height 5.0")),
    Case("sample_exemplars", "negative-vg-size", lambda w, d, mp: (
        {"--exemplar-dict-path": exemplar_file(w, d, "exemplar_dict", lambda r: r.update(
            dataset="visual_genome", x=0, y=0, w=-30, h=-40))},
        "has box width -30.0 and height -40.0")),
    Case("sample_exemplars", "no-categories", lambda w, d, mp: (
        {"--lvis-ann-path": write_json(d / "bad.json", {**lvis_doc(), "categories": [], "annotations": []})},
        "bad.json: 'categories' is empty")),
    Case("create_imagenetlvis_json", "no-categories", lambda w, d, mp: (
        {"--lvis-meta-path": write_json(d / "bad.json", {**lvis_doc(), "categories": [], "annotations": []})},
        "bad.json: 'categories' is empty")),
    Case("norm_feat_sum_norm", "complex-feat", lambda w, d, mp: (
        np.save(d / "c.npy", np.ones((3, 8), complex)), {"--feat2-path": d / "c.npy"}, "expected a real numeric array")[1:]),
    Case("cache_clip_features", "file-name-not-a-string", lambda w, d, mp: (
        {"--exemplar-dict": exemplar_file(w, d, "exemplar_dict", lambda r: r.update(file_name=5))},
        "exemplar_dict.json: class aerosol.n.02 exemplar 0: expected a record")),
    Case("norm_feat_sum_norm", "missing-feat", lambda w, d, mp: ({"--feat2-path": d / "absent.npy"}, "absent.npy: file not found")),
    Case("norm_feat_sum_norm", "empty-feat", lambda w, d, mp: (
        {"--feat2-path": copy_with(w.feat2, d / "e.npy", lambda b: b"")}, "e.npy: not a readable .npy")),
    Case("generate_vision_classifier_agg", "missing-checkpoint", lambda w, d, mp: (
        {"--load-path": d / "absent.pth"}, "absent.pth: aggregator checkpoint not found")),
    Case("eval_visual_aggregator", "checkpoint-is-a-folder", lambda w, d, mp: (
        {"--load-path": d}, "aggregator checkpoint is a folder")),
    Case("train_visual_aggregator", "resume-missing", lambda w, d, mp: ({"--resume": d / "absent.pth"}, "absent.pth: ")),
    Case("create_imagenetlvis_json", "missing-tree", lambda w, d, mp: (
        {"--imagenet-path": d / "absent"}, "ImageNet-21K-P folder not found")),
    Case("cache_clip_features", "missing-tree", lambda w, d, mp: (
        {"--exemplar-dict": None, "--image-root": d / "absent"}, "absent: image folder not found")),
]


# exemplar records whose category ids would be written into the classifier's sidecar (which every later tool
# refuses), and records sample_exemplars would have copied into its exemplar list
def shared_category_id(w, d):
    doc = json.loads(w.exemplar_list.read_text())
    for record in doc[1]:
        record["category_id"] = doc[0][0]["category_id"]
    return write_json(d / "exemplar_list.json", doc)


for tool, flag in [("get_exemplars_tta", "--ann-path"), ("generate_vision_classifier_agg", "--exemplar-list")]:
    CASES += [
        Case(tool, "category-id-not-an-integer", lambda w, d, mp, flag=flag: (
            {flag: exemplar_file(w, d, "exemplar_list", lambda r: r.update(category_id="1"))},
            "class 0 exemplar 0: 'category_id' must be an integer, found '1'")),
        Case(tool, "two-classes-one-category-id", lambda w, d, mp, flag=flag: (
            {flag: shared_category_id(w, d)}, "classes 0 and 1 both have category_id 1")),
    ]
CASES += [
    Case("sample_exemplars", "record-without-file-name", lambda w, d, mp: (
        {"--exemplar-dict-path": exemplar_file(w, d, "exemplar_dict", lambda r: r.pop("file_name")), "-K": "2"},
        "exemplar #0 of aerosol.n.02: no 'file_name' string")),
    Case("sample_exemplars", "category-id-not-an-integer", lambda w, d, mp: (
        {"--exemplar-dict-path": exemplar_file(w, d, "exemplar_dict", lambda r: r.update(category_id="1")), "-K": "2"},
        "exemplar #0 of aerosol.n.02: 'category_id' must be an integer")),
]


def json_edit(edit):
    """A bytes -> bytes edit of a JSON document made by `edit(decoded document)` in place."""
    def rewrite(data):
        doc = json.loads(data)
        edit(doc)
        return json.dumps(doc).encode()
    return rewrite


# boxes collate_exemplar_dict would have copied into the exemplar dictionary (sample_exemplars refused them a step later)
CASES += [
    Case("collate_exemplar_dict", "lvis-box-of-three", lambda w, d, mp: (
        {"--lvis-dir": lvis_folder(w, d, "lvis_v1_train.json", json_edit(
            lambda doc: doc["annotations"][0].update(bbox=[1, 2, 30])))},
        "lvis_v1_train.json: annotation #0: 'bbox' must be [x, y, w, h], found [1.0, 2.0, 30.0]")),
    Case("collate_exemplar_dict", "lvis-negative-box", lambda w, d, mp: (
        {"--lvis-dir": lvis_folder(w, d, "lvis_v1_train.json", json_edit(
            lambda doc: doc["annotations"][0].update(bbox=[1, 2, -35, 33])))},
        "lvis_v1_train.json: annotation #0: box width -35.0 and height 33.0 must not be negative")),
    Case("collate_exemplar_dict", "vg-negative-size", lambda w, d, mp: (
        {"--visual-genome-dir": vg_folder(w, d, "objects.json", json_edit(
            lambda doc: doc[0]["objects"][0].update(w=-40, h=-40)))},
        "objects.json: image 1 object #0: box width -40.0 and height -40.0 must not be negative")),
]


def shards_without_index(w, d):
    """An earlier cache's shard in the output folder, its index.json gone (a re-run took the shard as finished)."""
    (d / "out" / "x").mkdir()
    copy_with(w.cache / "shard-00000.npy", d / "out" / "x" / "shard-00000.npy", lambda b: b)
    return {}, "holds shard-00000.npy but no index.json"


CASES.append(Case("cache_clip_features", "shards-without-index", lambda w, d, mp: shards_without_index(w, d),
                  resumable=True))


CASES.append(Case("dump_clip_features_lvis_sentences", "blank-description", lambda w, d, mp: (
    {"--descriptions-path": write_json(d / "descriptions.json", {**json.loads(w.descriptions.read_text()),
                                                                  "aerosol can": ["A can.", " "]})},
    "descriptions.json: sentence 1 of 'aerosol can' is blank")))


# (tool, case, flag, bad value, needle): counts and settings the tools refuse before any work
BAD_VALUES = [
    ("sample_exemplars", "negative-k", "-K", "-1", "-K must be positive"),
    ("sample_exemplars", "negative-seed", "--seed", "-1", "--seed must not be negative"),
    ("create_imagenetlvis_json", "zero-workers", "--workers", "0", "--workers must be at least 1"),
    ("cache_clip_features", "zero-views", "--views", "0", "argument --views: must be"),
    ("cache_clip_features", "zero-shard-size", "--shard-size", "0", "argument --shard-size: must be"),
    ("cache_clip_features", "negative-workers", "--nw", "-1", "argument --nw/--workers: must be"),
    ("cache_clip_features", "negative-seed", "--seed", "-1", "argument --seed: must be"),
    ("train_visual_aggregator", "zero-steps", "--steps", "0", "argument --steps: must be"),
    ("train_visual_aggregator", "one-class-batch", "--batch-classes", "1", "at least 2"),
    ("train_visual_aggregator", "zero-layers", "--num-layers", "0", "argument --num-layers: must be"),
    ("train_visual_aggregator", "negative-seed", "--seed", "-1", "argument --seed: must be"),
    ("train_visual_aggregator", "negative-lr", "--lr", "-1", "need --lr > 0"),
    ("cache_clip_features", "negative-context", "--context", "-5", "argument --context: must be"),
    ("cache_clip_features", "nan-context", "--context", "nan", "argument --context: must be"),
    ("generate_descriptions", "negative-timeout", "--timeout", "-1", "--timeout must be positive"),
    ("eval_visual_aggregator", "zero-k", "--ks", "0", "argument --ks: must be"),
    ("eval_visual_aggregator", "negative-seed", "--seed", "-1", "argument --seed: must be"),
    ("eval_visual_aggregator", "wrong-layers", "--num-layers", "2", "check --num-layers"),
    ("generate_descriptions", "zero-workers", "--workers", "0", "--workers and --limit must be >= 1"),
    ("make_demo_data", "negative-seed", "--seed", "-1", "--seed must not be negative"),
    ("get_exemplars_tta", "zero-views", "--num-augs", "0", "argument --num-augs: must be at least 1"),
    *((t, "zero-batch", "--batch-size", "0", "argument --batch-size: must be at least 1") for t in CLIP_TOOLS),
]
CASES += [Case(tool, name, lambda w, d, mp, flag=flag, value=value, needle=needle: ({flag: value}, needle))
          for tool, name, flag, value, needle in BAD_VALUES]


# --- duplicate category ids and shared synsets ---------------------------------------------------

def duplicate_id_ann(w, d):
    doc = lvis_doc()
    doc["categories"] = [*CATS[:2], {**CATS[2], "id": CATS[0]["id"]}]
    doc["annotations"] = doc["annotations"][:2]
    return write_json(d / "lvis" / "lvis_v1_train.json", doc)


for tool, flag in [("remove_lvis_rare", "--ann"), ("get_lvis_cat_info", "--ann"),
                   ("create_imagenetlvis_json", "--lvis-meta-path"), ("sample_exemplars", "--lvis-ann-path"),
                   ("dump_clip_features", "--ann"), ("dump_clip_features_lvis_sentences", "--ann-path"),
                   ("generate_descriptions", "--ann-path"), ("cache_clip_features", "--lvis-ann"),
                   ("collate_exemplar_dict", "--lvis-dir")]:
    CASES.append(Case(tool, "duplicate-category-id", lambda w, d, mp, flag=flag: (
        {flag: duplicate_id_ann(w, d).parent if flag == "--lvis-dir" else duplicate_id_ann(w, d)},
        "category id 1 occurs more than once")))
CASES += [Case(tool, "category-id-true", lambda w, d, mp, flag=flag: (  # JSON true is a Python int
    {flag: write_json(d / "bad.json", lvis_doc([{**CATS[0], "id": True}, *CATS[1:]]))},
    "bad.json: 'categories' must be a list of objects with an integer 'id'"))
    for tool, flag in [("remove_lvis_rare", "--ann"), ("dump_clip_features", "--ann")]]
CASES.append(Case("get_lvis_cat_info", "duplicate-category-id-bypass", lambda w, d, mp: (
    {"--ann": duplicate_id_ann(w, d), "--bypass": ""}, "category id 1 occurs more than once")))
CASES.append(Case("collate_exemplar_dict", "shared-synset", lambda w, d, mp: ({"--lvis-dir": write_json(
    d / "lvis/lvis_v1_train.json", lvis_doc([*CATS[:2], {**CATS[2], "synset": CATS[0]["synset"]}])).parent},
    "categories 1 and 13 share synset aerosol.n.02")))


# --- a second training run in one folder ---------------------------------------------------------

def earlier_run(w, d, mp):
    run = d / "out" / "x"
    run.mkdir()
    (run / "checkpoint-0000002.pth").write_bytes(GOOD)
    (run / "metrics.jsonl").write_bytes(b'{"step": 1}\n{"step": 2}\n')
    return {}, "holds checkpoint-0000002.pth of an earlier run; continue it with --resume latest"


CASES.append(Case("train_visual_aggregator", "restart-without-resume", earlier_run))


def run_case(case, world, tmp_path, monkeypatch, bad_input):
    d = tmp_path
    (d / "out").mkdir()
    out = d / "out" / "x"
    edits, needle = case.make(world, d, monkeypatch)
    out = Path(edits.pop("out", out))
    argv = [str(v) for v in TOOLS[case.tool](world, out)]
    for flag, value in edits.items():
        argv = with_flag(argv, flag, None if value is None else str(value))
        if value == "":
            argv = argv[:-1]  # a switch
    existing = GOOD if case.tool not in OUT_FOLDERS and not out.exists() and out.parent.is_dir() else None
    bad_input(MODULES[case.tool].main, argv, out, needle, existing=existing, resumable=case.resumable)
    return d


SLOW_CASES = {"train_visual_aggregator-code-in--resume"}  # runs seconds of training before the refused load


# the quick tier runs one case per fault (a fault read through several flags counts once)
@pytest.mark.parametrize("case", quick_once(CASES, ids=lambda c: c.id, kind=lambda c: c.name.split("--")[0],
                                            always_slow=lambda c: c.id in SLOW_CASES))
def test_catalogue(case, world, tmp_path, monkeypatch, bad_input):
    d = run_case(case, world, tmp_path, monkeypatch, bad_input)
    assert not (d / "MARKER").exists(), "code from the checkpoint ran"


def test_catalogue_reaches_every_tool_with_every_class():
    tools = {c.tool for c in CASES}
    assert tools == set(TOOLS)
    assert len(CASES) > 100
    for kind in ("code-in", "output-folder-unwritable", ("output-folder-missing", "output-parent-is-a-file")):
        reached = {c.tool for c in CASES if c.name.startswith(kind)}
        assert reached == ({t for t, _ in CHECKPOINT_FLAGS} | set(CLIP_TOOLS) if kind == "code-in" else set(TOOLS))


def test_allow_listed_checkpoint_types_load_and_others_need_trust(world, tmp_path, capsys):
    """numpy scalars and argparse.Namespace (what training scripts save beside the weights) load; a
    datetime does not, unless --trust-checkpoint."""
    import argparse

    state = torch.load(world.aggregator, weights_only=True)["state_dict"]
    plain = tmp_path / "released.pth"
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-4, layers=1), "best": np.float64(0.5),
                "epoch": np.int64(3)}, plain)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": state, "saved": datetime.date(2023, 1, 1)}, other)
    argv = TOOLS["eval_visual_aggregator"](world, tmp_path / "eval.json")
    assert eval_visual_aggregator.main([str(v) for v in with_flag(argv, "--load-path", str(plain))]) == 0
    assert eval_visual_aggregator.main([str(v) for v in with_flag(argv, "--load-path", str(other))]) == 2
    assert "holds datetime.date" in capsys.readouterr().err
    assert eval_visual_aggregator.main([str(v) for v in with_flag(argv, "--load-path", str(other))]
                                       + ["--trust-checkpoint"]) == 0
    assert "--trust-checkpoint" in eval_visual_aggregator.get_parser().format_help()
    assert "--trust-checkpoint" in generate_vision_classifier_agg.get_parser().format_help()


def test_decompression_bomb_in_the_imagenet_scan_is_skipped_and_listed(world, tmp_path, capsys):
    tree = tmp_path / "imagenet"
    shutil.copytree(world.imagenet, tree)
    bomb_png(tree / f"imagenet21k_P/train/{WNID}/{WNID}_2.JPEG")
    out = tmp_path / "info.json"
    argv = [str(v) for v in TOOLS["create_imagenetlvis_json"](world, out)]
    assert create_imagenetlvis_json.main(with_flag(argv, "--imagenet-path", str(tree))) == 0
    assert f"skipped 1 unreadable images: train/{WNID}/{WNID}_2.JPEG" in capsys.readouterr().err
    assert [i["file_name"] for i in json.loads(out.read_text())["images"]] == [f"train/{WNID}/{WNID}_1.JPEG"]


def test_training_restarted_with_resume_keeps_one_metrics_log(world, tmp_path):
    run = tmp_path / "run"
    argv = [str(v) for v in TOOLS["train_visual_aggregator"](world, run)]
    assert train_visual_aggregator.main(with_flag(argv, "--checkpoint-every", "1")) == 0
    first = (run / "metrics.jsonl").read_bytes().splitlines()
    assert train_visual_aggregator.main(with_flag(with_flag(argv, "--steps", "3"), "--resume", "latest")) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_bytes().splitlines()]
    assert steps == [1, 2, 3] and len(first) == 2


# --- server answers (the fake OpenAI server of tests/tools/test_generate_descriptions.py) -------------------------

@pytest.fixture
def answers(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return server


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("body,needle", [
    (b'{"choices": [', "a body that is not JSON"),
    (b"<html><body>Proxy login</body></html>", "a body that is not JSON"),
    (b'{"id": "x", "object": "text_completion"}', "JSON without a 'choices' list"),
    (b'{"choices": null}', "JSON without a 'choices' list"),
    (b'{"choices": [{"index": 0}]}', "a choice without a"),
    (b'{"choices": [{"index": 0, "text": 5, "message": {"content": 5}}]}', "a choice without a"),
    (b"[]", "JSON without a 'choices' list"),
])
def test_server_answers_that_are_not_openai_responses(world, tmp_path, answers, bad_input, api, body, needle):
    answers.raw_body = body
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "descriptions.json"
    argv = [str(v) for v in TOOLS["generate_descriptions"](world, out)]
    argv = with_flag(with_flag(argv, "--base-url", answers.base_url), "--api", api)
    bad_input(generate_descriptions.main, argv, out, needle, existing=GOOD)


def test_retired_model_leaves_no_cache_and_another_model_then_runs(world, tmp_path, answers, bad_input):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "descriptions.json"
    argv = with_flag([str(v) for v in TOOLS["generate_descriptions"](world, out)], "--base-url", answers.base_url)
    retired = with_flag(argv, "--openai-model", "text-davinci-003")
    bad_input(generate_descriptions.main, retired, out, "--openai-model gpt-4o-mini (chat) or gpt-3.5-turbo-instruct")
    # a cache of another model (an interrupted run) does not block the next model either
    stale = cache_path_for(out, "text-davinci-003", "completions")
    stale.write_bytes(b'{"settings": {"model": "text-davinci-003"}}\n')
    assert generate_descriptions.main(with_flag(argv, "--openai-model", "gpt-test-instruct")) == 0
    written = json.loads(out.read_text())
    assert list(written) == [description_key(c) for c in CATS]
    assert written["aerosol can"][0] == clean_sample(fake_text(describe_prompt("aerosol can"), 10, 0))
    assert stale.exists() and not cache_path_for(out, "gpt-test-instruct", "completions").exists()
