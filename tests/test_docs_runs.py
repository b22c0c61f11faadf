"""The documented commands that run offline, read from the pages and run as written, in a folder laid out as
the pages assume: the demo's LVIS val and scenes under datasets/, classifiers under datasets/metadata/ and
photos of the pages' three classes in my_photos/ (demo photos), on the CLIP shipped with mmovod (`world`, as
the pages' offline commands name it, or the CLIP a classifier's sidecar names).

What a page leaves to the reader is filled in: `my_val.json`/`my_images/` (your labelled set) is a COCO file
of the photos, each one box; a file the pages describe as having no sidecar (Detic's
`lvis_v1_clip_a+cname.npy`) is 512-d rows without one. Commands needing the network or released CLIP weights
(`download_assets --clip`, ViT-B/32 builds, aggregator training on ImageNet-21K) are left to
tests/test_docs_commands.py, which checks their tools and flags. The datasets guide's commands:
tests/test_guide_commands.py; the README's own-classes quick start and docs/handoff.md's exports:
tests/test_package.py. Also: the README's table of the demo's numbers is docs/demo.md's.
"""
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.cli.commands import ALIASES
from tests.docs_text import ROOT, block_commands, shell_block

CLASSES = {"hard hat": "hard-hat", "traffic cone": "traffic cone", "excavator": "digger"}
# the pages' photo folders, filled with the demo's own-class photos
PHOTOS = {"hard-hat": "stop_sign", "traffic cone": "carpet runner", "digger": "Grapes"}
# (page, the text the block follows): run in this order, in one folder
OWN = [("docs/your-own-classes.md", "No download and no network"),
       ("README.md", "## Quick start: is this classifier any good?"),
       ("docs/evaluation.md", "## Your own classes on your own labelled set"),
       ("tools/README.md", "### `eval_classifiers.py`"),
       ("tools/README.md", "### `export_classifier.py`"),
       ("tools/README.md", "### `models.py`"),
       ("tools/README.md", "### `download_assets.py`")]
# in a folder whose datasets/metadata/lvis_v1_clip_a+cname.npy has no sidecar
NO_SIDECAR = [("docs/handoff.md", "for the YOLO-World formats, `--space`:"),
              ("tools/README.md", "### `check_classifier.py`")]
FILLED_IN = {"my_val.json": "my_val.json", "my_images/": "my_images/"}


def run_command(words: list[str]) -> int:
    """Run one documented command in-process (`python tools/X.py ...`, `mmovod X ...` or `mkdir -p ...`)."""
    if words[:2] == ["mkdir", "-p"]:
        for folder in words[2:]:
            Path(folder).mkdir(parents=True, exist_ok=True)
        return 0
    if words[0] == "python" and words[1].startswith("tools/"):
        name, args, prog = Path(words[1]).stem, words[2:], None
    elif words[0] == "mmovod":
        name, args = ALIASES.get(words[1], words[1]), words[2:]
        prog = f"mmovod {words[1]}"
    else:
        raise AssertionError(f"not a command this test knows how to run: {' '.join(words)}")
    try:
        return importlib.import_module(f"tools.{name}").main(args, prog=prog) if prog else \
            importlib.import_module(f"tools.{name}").main(args)
    except SystemExit as stop:  # an argument error
        return stop.code


def failures(block: str) -> list[str]:
    """The commands of a block that end with a non-zero exit code; the block stops at the first."""
    for words in block_commands(block):
        code = run_command([FILLED_IN.get(word, word) for word in words])
        if code != 0:
            return [f"exit {code}: {' '.join(words)}"]
    return []


def classifier(path: Path, rows: np.ndarray, demo: Path, ids: list[int], kind: str) -> None:
    clip = {"clip_model": str(demo / "clip/world_clip.json"), "pretrained": str(demo / "clip/world_clip.pt"),
            "embed_dim": rows.shape[1]}
    save_classifier(path, rows, make_sidecar(rows, kind, clip, space="clip", category_ids=ids))


@pytest.fixture
def docs_folder(tmp_path, demo_dataset, monkeypatch):
    """A folder laid out as the pages assume (see the module's docstring), as the working directory."""
    datasets = tmp_path / "datasets"
    (datasets / "metadata").mkdir(parents=True)
    for name in ("lvis", "coco", "clip"):
        (datasets / name).symlink_to(demo_dataset / name)
    ids = sorted(c["id"] for c in json.loads((demo_dataset / "lvis/lvis_v1_val.json").read_text())["categories"])
    rng = np.random.default_rng(0)
    for name, kind in (("lvis_v1_clip_a+cname", "text"), ("lvis_multi-modal_agg_K-005_own", "multi-modal")):
        classifier(datasets / f"metadata/{name}.npy", rng.standard_normal((len(ids), 128)).astype(np.float32),
                   demo_dataset, ids, kind)
    (tmp_path / "my_classes.txt").write_text("hard hat, safety helmet\ntraffic cone\nexcavator, digger\n")
    images, annotations = [], []
    (tmp_path / "my_images").mkdir()
    for cat_id, (folder, source) in enumerate(PHOTOS.items(), 1):
        shutil.copytree(demo_dataset / "custom/exemplars" / source, tmp_path / "my_photos" / folder)
        for photo in sorted((tmp_path / "my_photos" / folder).iterdir()):
            name = f"{len(images)}.jpg"
            shutil.copy(photo, tmp_path / "my_images" / name)
            width, height = Image.open(photo).size
            images.append({"id": len(images) + 1, "file_name": name, "width": width, "height": height})
            annotations.append({"id": len(images), "image_id": len(images), "category_id": cat_id,
                                "bbox": [0, 0, width, height], "area": width * height, "iscrowd": 0})
    categories = [{"id": i, "name": name} for i, name in enumerate(CLASSES, 1)]
    (tmp_path / "my_val.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                      "categories": categories}))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_the_offline_commands_of_the_pages_run_as_written(docs_folder):
    for page, marker in OWN:
        assert failures(shell_block(page, marker)) == [], page
    written = {"eval/mine": {"eval_results.json", "eval_results.md", "eval_map_top1_by_frequency.png",
                             "eval_ap_vs_frequency.png", "report.html", "report_files"},
               "my_eval": {"eval_results.json", "eval_results.md"}, "eval_text": {"eval_results.json"},
               "my_classifiers": {"text.npy", "vision-average.npy", "multi-modal-average.npy", "report"}}
    for folder, names in written.items():
        assert names <= {p.name for p in (docs_folder / folder).iterdir()}, folder
    mine = json.loads((docs_folder / "my_eval/eval_results.json").read_text())
    assert [c["name"] for c in mine["classifiers"]][:2] == ["text", "multi-modal-average"]
    assert (docs_folder / "mine.pt").is_file()

    # the pages' commands for a classifier without sidecar
    (docs_folder / "datasets/metadata").mkdir(exist_ok=True)
    for path in (docs_folder / "datasets/metadata").glob("lvis_v1_clip_a+cname.npy*"):
        path.unlink()
    np.save(docs_folder / "datasets/metadata/lvis_v1_clip_a+cname.npy",
            np.random.default_rng(1).standard_normal((40, 512)).astype(np.float32))
    for page, marker in NO_SIDECAR:
        assert failures(shell_block(page, marker)) == [], page
    assert {"lvis_yw.npy", "lvis_yw.classes.txt", "lvis_yw.class_texts.json"} <= {p.name for p in docs_folder.iterdir()}


def test_a_broken_page_command_fails(docs_folder):
    """The run catches a command that no longer works: a flag renamed in a copy of a page's block, and the
    README's evaluation block without the `mkdir` its --out-dir needs."""
    block = shell_block("docs/handoff.md", "for the YOLO-World formats, `--space`:")
    np.save(docs_folder / "datasets/metadata/lvis_v1_clip_a+cname.npy", np.ones((40, 512), np.float32))
    assert failures(block.replace("--space clip", "--spaces clip")) == [
        "exit 2: mmovod export datasets/metadata/lvis_v1_clip_a+cname.npy --format yolo-world --out-path lvis_yw.npy"
        " --class-names datasets/lvis/lvis_v1_val.json --clip_model ViT-B/32 --spaces clip"]
    readme = shell_block("README.md", "## Quick start: is this classifier any good?")
    assert readme.startswith("mkdir -p eval")
    [failure] = failures(readme.split("\n", 1)[1])
    assert failure.startswith("exit 2: python tools/eval_classifiers.py") and "--out-dir eval/mine" in failure


def demo_table(text: str, columns: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per classifier, the given columns of the first Markdown table in `text` with a `classifier` column."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("| classifier |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(header) or not cells[0].startswith("lvis_") and not cells[0].startswith("world_"):
            break
        rows[cells[0]] = tuple(cells[header.index(column)] for column in columns)
    return rows


def test_the_readme_quotes_the_demo_numbers_of_demo_md():
    readme = (ROOT / "README.md").read_text()
    demo = demo_table((ROOT / "docs/demo.md").read_text(), ("top-1", "mAP"))
    assert len(demo) == 6 and demo_table(readme, ("top-1", "mAP")) == demo
    # and the comparison can fail: one number of the README changed
    assert readme.count("| 96.7 | 99.5 |") == 1
    assert demo_table(readme.replace("| 96.7 | 99.5 |", "| 96.6 | 99.5 |"), ("top-1", "mAP")) != demo
