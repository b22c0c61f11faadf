import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from mmovod.classifiers.sidecar import read_sidecar
from mmovod.clip.factory import load_clip
from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path
from mmovod.classifiers.text_inputs import PromptSpec, class_prompts, description_key, synset_lemmas
from mmovod.clip.text_encoding import max_relative_difference
from tools import dump_clip_features, dump_clip_features_lvis_sentences

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = json.loads((ROOT / "tests/data/lvis_v1_categories.json").read_text())
AUTHOR_DESCRIPTIONS = ROOT / "datasets/metadata/lvis_gpt3_text-davinci-002_descriptions_author.json"


@pytest.fixture(scope="module")
def tiny(tiny_clip, tiny_bundle):
    """(clip flags, loaded bundle) of the session's tiny CLIP."""
    return tiny_clip.flags, tiny_bundle


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """Like `tiny` with a 1-layer, 16-wide text tower, so 12,030 sentences at 77 tokens encode in a second."""
    folder = tmp_path_factory.mktemp("micro")
    config = json.loads(tiny_clip_config_path().read_text())
    config["text_cfg"].update(width=16, heads=2, layers=1)
    (folder / "micro_clip.json").write_text(json.dumps(config))
    save_random_checkpoint(folder / "micro_clip.json", folder / "micro.pt", seed=6)
    flags = ["--clip_model", str(folder / "micro_clip.json"), "--pretrained", str(folder / "micro.pt"), "--device", "cpu"]
    return flags, load_clip(str(folder / "micro_clip.json"), str(folder / "micro.pt"), "cpu")


def _embed(bundle, sentences):
    """Full 77-token encode_text straight through open_clip."""
    with torch.inference_mode():
        return bundle.model.encode_text(open_clip.tokenize(sentences)).numpy()


def _ann(tmp_path, cats):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    return path


def _by_name(*names):
    return [c for c in CATEGORIES if c["name"] in names]


def test_prompts_follow_detic(tmp_path):
    cats = _by_name("aerosol_can", "bull", "stop_sign")
    ann = _ann(tmp_path, cats)
    assert class_prompts(cats, ann, PromptSpec("a")) == [["a aerosol_can"], ["a bull"], ["a stop_sign"]]
    assert class_prompts(cats, ann, PromptSpec("photo", fix_space=True))[0] == ["a photo of a aerosol can"]
    assert class_prompts(cats, ann, PromptSpec("scene"))[1] == ["a photo of a bull in the scene"]
    assert class_prompts(cats, ann, PromptSpec("none", avg_synonyms=True))[1] == ["horned_cow"]
    assert class_prompts(cats, ann, PromptSpec("a", avg_synonyms=True, use_wn_name=True)) == [
        ["a aerosol", "a aerosol_container", "a aerosol_can", "a aerosol_bomb", "a spray_can"],
        ["a bull"],
        ["a stop_sign"],
    ]
    monitor = _by_name("monitor_(computer_equipment) computer_monitor")
    assert class_prompts(monitor, ann, PromptSpec("none", use_underscore=True)) == [["monitor_(computer_equipment)_computer_monitor"]]
    assert description_key(cats[1]) == "horned cow"


def test_lemma_table_covers_lvis_with_stop_sign_keeping_its_own_name():
    table = synset_lemmas()
    assert set(table) >= {c["synset"] for c in CATEGORIES}
    assert table["stop_sign.n.01"] == ["stop_sign"]
    assert table["aerosol.n.02"] == ["aerosol", "aerosol_container", "aerosol_can", "aerosol_bomb", "spray_can"]


@pytest.mark.slow
def test_dump_clip_features_default_prompt(tmp_path, tiny):
    flags, bundle = tiny
    cats = _by_name("stop_sign", "aerosol_can", "bull")  # file order is not id order
    ann = _ann(tmp_path, cats[::-1])
    out = tmp_path / "clip_a+cname.npy"
    assert dump_clip_features.main(["--ann", str(ann), "--out_path", str(out), *flags]) == 0
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (3, 512)
    want = _embed(bundle, ["a aerosol_can", "a bull", "a stop_sign"])
    assert max_relative_difference(got, want) < 1e-5
    side = read_sidecar(out)
    assert side.kind == "text" and side.category_ids == sorted(c["id"] for c in cats)
    assert side.class_names == ["aerosol_can", "bull", "stop_sign"]
    assert side.normalized is False and side.details["prompt"] == "a {}"
    assert side.command.split()[1:3] == ["--ann", str(ann)]


@pytest.mark.slow
def test_dump_clip_features_averages_wordnet_synonyms(tmp_path, tiny):
    flags, bundle = tiny
    ann = _ann(tmp_path, _by_name("aerosol_can", "stop_sign"))
    out = tmp_path / "wn.npy"
    argv = ["--ann", str(ann), "--out_path", str(out), "--prompt", "photo", "--avg_synonyms", "--use_wn_name", *flags]
    assert dump_clip_features.main(argv) == 0
    aerosol = [f"a photo of a {w}" for w in ["aerosol", "aerosol_container", "aerosol_can", "aerosol_bomb", "spray_can"]]
    want = np.stack([_embed(bundle, aerosol).mean(0), _embed(bundle, ["a photo of a stop_sign"])[0]])
    assert max_relative_difference(np.load(out), want) < 1e-5


@pytest.mark.slow
def test_description_features_of_the_real_12030_descriptions(tmp_path, micro):
    flags, bundle = micro
    ann = _ann(tmp_path, CATEGORIES[::-1])
    out = tmp_path / "features.npy"
    argv = ["--descriptions-path", str(AUTHOR_DESCRIPTIONS), "--ann-path", str(ann), "--out-path", str(out), *flags]
    assert dump_clip_features_lvis_sentences.main(argv) == 0
    got = np.load(out)
    assert got.shape == (1203, 512) and got.dtype == np.float32
    descriptions = json.loads(AUTHOR_DESCRIPTIONS.read_text())
    cats = sorted(CATEGORIES, key=lambda c: c["id"])
    flat = [s for c in cats for s in descriptions[c["synonyms"][0].replace("_", " ")]]
    assert len(flat) == 12030
    tokens = open_clip.tokenize(flat)
    with torch.inference_mode():
        emb = torch.cat([bundle.model.encode_text(t) for t in tokens.split(1000)])
    want = emb.reshape(1203, 10, 512).mean(dim=1).numpy()
    assert max_relative_difference(got, want) < 1e-5
    assert read_sidecar(out).category_ids == [c["id"] for c in cats]


def _bad(capsys, main, argv, out):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err
    assert not out.exists() and not Path(str(out) + ".json").exists()
    return err


def test_description_tool_bad_inputs_exit_2_with_one_line_and_no_output(tmp_path, tiny, capsys):
    flags, _ = tiny
    cats = _by_name("aerosol_can", "bull", "stop_sign")
    ann = _ann(tmp_path, cats)
    out = tmp_path / "out.npy"

    def run(descriptions, ann_path=ann, out_path=out, extra=flags):
        path = tmp_path / "desc.json"
        path.write_text(json.dumps(descriptions))
        argv = ["--descriptions-path", str(path), "--ann-path", str(ann_path), "--out-path", str(out_path), *extra]
        return _bad(capsys, dump_clip_features_lvis_sentences.main, argv, out_path)

    good = {"aerosol can": ["x."], "horned cow": ["y."], "stop sign": ["z."]}
    assert "no descriptions for 2 of 3 classes: 'horned cow', 'stop sign'" in run({"aerosol can": ["x."], "bull": ["y."]})
    assert "no descriptions for 1 of 3" in run({**good, "stop sign": []})
    assert "is not a list of strings" in run({**good, "stop sign": "a sign."})
    assert "expected a JSON object" in run([["x."]])
    no_cats = tmp_path / "no_cats.json"
    no_cats.write_text(json.dumps({"images": []}))
    assert "no 'categories' key" in run(good, ann_path=no_cats)
    assert "unknown --clip_model 'ViT-Q/99'" in run(good, extra=["--clip_model", "ViT-Q/99", "--device", "cpu"])
    assert "does not exist" in run(good, out_path=tmp_path / "missing" / "out.npy")


def test_dump_clip_features_bad_inputs(tmp_path, tiny, capsys):
    flags, _ = tiny
    out = tmp_path / "out.npy"
    no_cats = tmp_path / "no_cats.json"
    no_cats.write_text(json.dumps({"images": []}))
    assert "no 'categories' key" in _bad(capsys, dump_clip_features.main,
                                         ["--ann", str(no_cats), "--out_path", str(out), *flags], out)
    weird = _ann(tmp_path, [{"id": 1, "name": "thing", "synset": "not_a_synset.n.01", "synonyms": ["thing"]}])
    assert "not_a_synset.n.01" in _bad(capsys, dump_clip_features.main,
                                       ["--ann", str(weird), "--out_path", str(out), "--avg_synonyms", "--use_wn_name",
                                        *flags], out)
    missing = tmp_path / "nope" / "out.npy"
    assert "does not exist" in _bad(capsys, dump_clip_features.main,
                                    ["--ann", str(weird), "--out_path", str(missing), *flags], missing)
