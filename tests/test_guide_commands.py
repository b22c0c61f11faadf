"""Every command of the datasets guide, as written, on the demo dataset laid out as the guide lays out
real data (run from a folder holding datasets/, checkpoints/ and the metadata/ link).

CLIP weights cannot be downloaded in tests, so the CLIP tools get the tiny demo CLIP appended
(--clip_model/--pretrained/--device); every other flag and path is the guide's. Two commands are
adapted and say why below.
"""
import importlib
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmovod.demo.dataset import make_demo_dataset
from tests.docs_text import GUIDE, block_commands, shell_block

ROOT = Path(__file__).resolve().parents[1]

# generate_descriptions.py needs an LLM server: tests/tools/test_generate_descriptions.py runs it against a local one.
CLIP_TOOLS = {"dump_clip_features_lvis_sentences", "generate_vision_classifier_agg", "get_exemplars_tta",
              "dump_clip_features"}


@pytest.fixture(scope="module")
def guide_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("guide")
    make_demo_dataset(root / "datasets")
    shutil.copy(ROOT / "datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json",
                root / "datasets/metadata/")
    (root / "checkpoints/visual_aggregator").mkdir(parents=True)
    shutil.copy(root / "datasets/checkpoints/visual_aggregator_demo.pth",
                root / "checkpoints/visual_aggregator/visual_aggregator_ckpt_4_transformer.pth")
    os.symlink(os.readlink(ROOT / "metadata"), root / "metadata")
    (root / "datasets/imagenet/annotations").mkdir()  # the guide's `mkdir imagenet/annotations`
    return root


def run_guide_command(command: str, root: Path) -> int:
    argv = shlex.split(command)
    name = Path(argv[1]).stem
    if name in CLIP_TOOLS:
        argv += ["--clip_model", str(root / "datasets/clip/tiny_clip.json"),
                 "--pretrained", str(root / "datasets/clip/tiny_clip.pt"), "--device", "cpu"]
    if name == "norm_feat_sum_norm" and not (root / "datasets/metadata/lvis_gpt3_text-davinci-002_features_own.npy").exists():
        # the guide fuses "_own" text features: a user's own run of the description step
        shutil.copy(root / "datasets/metadata/lvis_gpt3_text-davinci-002_features_author.npy",
                    root / "datasets/metadata/lvis_gpt3_text-davinci-002_features_own.npy")
    tool = importlib.import_module(f"tools.{name}")
    return tool.main(argv[2:])


@pytest.mark.slow
def test_every_guide_command_runs_as_written(guide_root, monkeypatch):
    monkeypatch.chdir(guide_root)
    for command in GUIDE:
        assert run_guide_command(command, guide_root) == 0, command
    meta = guide_root / "datasets/metadata"
    expected = {
        "lvis_gpt3_text-davinci-002_features_author.npy": (np.float32, (40, 512)),
        "lvis_image_exemplar_features_agg_K-005_own.npy": (np.float16, (40, 512)),
        "lvis_image_exemplar_features_avg_K-005_own.npy": (np.float32, (40, 512)),
        "lvis_multi-modal_agg_K-005_own.npy": (np.float32, (40, 512)),
        "lvis_multi-modal_avg_K-005_own.npy": (np.float32, (40, 512)),
        "lvis_v1_clip_a+cname.npy": (np.float32, (40, 512)),
    }
    for name, (dtype, shape) in expected.items():
        array = np.load(meta / name)
        assert array.dtype == dtype and array.shape == shape, name
        assert (meta / f"{name}.json").is_file(), name
    for path in ("datasets/lvis/lvis_v1_train_norare.json", "datasets/lvis/lvis_v1_train_cat_info.json",
                 "datasets/imagenet/annotations/imagenet_lvis_image_info.json"):
        assert (guide_root / path).is_file(), path


@pytest.mark.slow
def test_the_readme_and_tools_readme_guide_commands_run_as_written(guide_root, monkeypatch):
    """The README's guide quick start and tools/README's usage line of each guide step, read from the pages (the
    CLIP tools with the tiny CLIP appended, as above)."""
    monkeypatch.chdir(guide_root)
    readme = block_commands(shell_block("README.md", "## Quick start: the datasets guide"))
    steps = [words for words in readme if words[0] == "python"]
    order = iter(Path(shlex.split(c)[1]).stem for c in GUIDE)
    assert all(Path(words[1]).stem in order for words in steps), "not in the guide's order"
    index = [words for tool in {Path(shlex.split(c)[1]).stem for c in GUIDE}
             for words in block_commands(shell_block("tools/README.md", f"### `{tool}.py`"))]
    assert len(index) == len({Path(shlex.split(c)[1]).stem for c in GUIDE})
    for words in readme + [words for words in index if words not in readme]:
        if words[:2] == ["mkdir", "-p"]:
            Path(words[2]).mkdir(parents=True, exist_ok=True)
        else:
            assert run_guide_command(shlex.join(words), guide_root) == 0, shlex.join(words)
    assert (guide_root / "datasets/metadata/lvis_multi-modal_agg_K-005_own.npy.json").is_file()
