"""What the tests read from the user docs: the datasets guide's commands as written, the README's API
example, the shell blocks of the pages."""
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

GUIDE = [
    "python tools/remove_lvis_rare.py --ann datasets/lvis/lvis_v1_train.json",
    "python tools/create_imagenetlvis_json.py --imagenet-path datasets/imagenet/imagenet21k_P"
    " --out-path datasets/imagenet/annotations/imagenet_lvis_image_info.json",
    "python tools/get_lvis_cat_info.py --ann datasets/lvis/lvis_v1_train.json",
    "python tools/dump_clip_features_lvis_sentences.py"
    " --descriptions-path datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json"
    " --ann-path datasets/lvis/lvis_v1_val.json --out-path datasets/metadata/lvis_gpt3_text-davinci-002_features_author.npy",
    "python tools/collate_exemplar_dict.py --lvis-dir datasets/lvis --imagenet-dir datasets/imagenet"
    " --visual-genome-dir datasets/VisualGenome --output-path datasets/metadata/exemplar_dict.json",
    "python tools/sample_exemplars.py --lvis-ann-path datasets/lvis/lvis_v1_val.json"
    " --exemplar-dict-path datasets/metadata/exemplar_dict.json -K 5"
    " --out-path datasets/metadata/lvis_image_exemplar_dict_K-005_own.json",
    "python tools/generate_vision_classifier_agg.py --exemplar-list datasets/metadata/lvis_image_exemplar_dict_K-005_own.json"
    " --out-path datasets/metadata/lvis_image_exemplar_features_agg_K-005_own.npy --num-augs 5 --tta"
    " --load-path checkpoints/visual_aggregator/visual_aggregator_ckpt_4_transformer.pth",
    # the guide's --ann-path is the authors' absolute /users/prannay/mm-ovod/datasets/metadata/...; relative here
    "python tools/get_exemplars_tta.py --ann-path datasets/metadata/lvis_image_exemplar_dict_K-005_own.json"
    " --output-path datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy --num-augs 5",
    "python tools/norm_feat_sum_norm.py --feat1-path datasets/metadata/lvis_gpt3_text-davinci-002_features_own.npy"
    " --feat2-path datasets/metadata/lvis_image_exemplar_features_agg_K-005_own.npy"
    " --out-path datasets/metadata/lvis_multi-modal_agg_K-005_own.npy",
    "python tools/norm_feat_sum_norm.py --feat1-path datasets/metadata/lvis_gpt3_text-davinci-002_features_own.npy"
    " --feat2-path datasets/metadata/lvis_image_exemplar_features_avg_K-005_own.npy"
    " --out-path datasets/metadata/lvis_multi-modal_avg_K-005_own.npy",
    "python tools/dump_clip_features.py --ann datasets/lvis/lvis_v1_val.json --out_path metadata/lvis_v1_clip_a+cname.npy",
]
# generate_descriptions.py needs an LLM server: tests/tools/test_generate_descriptions.py runs it against a local one.


def readme_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def shell_block(page: str, heading: str) -> str:
    """The first fenced shell block after `heading` in `page` (a path from the repository root), as written."""
    section = (ROOT / page).read_text().split(heading, 1)[1]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def block_commands(block: str) -> list[list[str]]:
    """The commands of a shell block as words: line continuations joined, comments and blank lines dropped."""
    return [words for line in block.replace("\\\n", " ").splitlines()
            if (words := shlex.split(line, comments=True))]
