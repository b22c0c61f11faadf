"""Every vocabulary format of mmovod.readers.vocabulary_file, and each of its errors."""
import json

import pytest

from mmovod.io.errors import InputError
from mmovod.readers.vocabulary_file import ExemplarRef, normalise_name, read_vocabulary

TEXT = """# construction site classes
hard hat, safety helmet , hardhat

traffic cone   # orange ones
  Excavator,digger
"""

ENTRIES = [
    {"name": "hard hat", "synonyms": ["safety helmet", "hardhat"], "descriptions": ["A rigid helmet.", "Often yellow."],
     "exemplars": ["hats/a.jpg", {"image": "hats/b.png", "bbox": [1, 2.5, 30, 40]}], "id": 7},
    "traffic cone",
    {"name": "Excavator", "synonyms": ["digger"]},
]

YAML = """- name: hard hat
  synonyms: [safety helmet, hardhat]
  descriptions:
    - A rigid helmet.
    - Often yellow.
  exemplars:
    - hats/a.jpg
    - {image: hats/b.png, bbox: [1, 2.5, 30, 40]}
  id: 7
# a comment
- traffic cone
- name: Excavator
  synonyms: [digger]
"""


def summary(vocab):
    return [(c.name, c.synonyms, c.descriptions, c.exemplars, c.category_id) for c in vocab.classes]


def test_text_format(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    vocab = read_vocabulary(path)
    assert vocab.format == "text" and len(vocab) == 3
    assert vocab.names == ["hard hat", "traffic cone", "Excavator"]
    assert summary(vocab) == [
        ("hard hat", ("hard hat", "safety helmet", "hardhat"), (), (), None),
        ("traffic cone", ("traffic cone",), (), (), None),
        ("Excavator", ("Excavator", "digger"), (), (), None),
    ]
    assert [c.where for c in vocab.classes] == [f"{path}: line {n}" for n in (2, 4, 5)]


def test_json_and_yaml_lists_are_the_same_vocabulary(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps(ENTRIES, indent=1))
    (tmp_path / "v.yaml").write_text(YAML)
    from_json, from_yaml = read_vocabulary(tmp_path / "v.json"), read_vocabulary(tmp_path / "v.yaml")
    assert (from_json.format, from_yaml.format) == ("json", "yaml")
    assert summary(from_json) == summary(from_yaml) == [
        ("hard hat", ("hard hat", "safety helmet", "hardhat"), ("A rigid helmet.", "Often yellow."),
         (ExemplarRef(str(tmp_path / "hats/a.jpg")), ExemplarRef(str(tmp_path / "hats/b.png"), (1.0, 2.5, 30.0, 40.0))), 7),
        ("traffic cone", ("traffic cone",), (), (), None),
        ("Excavator", ("Excavator", "digger"), (), (), None),
    ]
    assert [c.where.rsplit(" ", 1)[1] for c in from_yaml.classes] == ["1", "11", "12"]
    lines = json.dumps(ENTRIES, indent=1).splitlines()
    assert [c.where.rsplit(" ", 1)[1] for c in from_json.classes] == [
        str(i + 1) for i, line in enumerate(lines) if line in (' {', ' "traffic cone",')]


@pytest.mark.parametrize("with_synonyms", [True, False])
def test_lvis_and_coco_annotation_files_in_id_order(tmp_path, with_synonyms):
    cats = [{"id": 9, "name": "zebra", "synonyms": ["zebra"]}, {"id": 2, "name": "aerosol_can", "synonyms":
            ["aerosol_can", "spray_can"]}, {"id": 5, "name": "bus", "synonyms": ["bus_(vehicle)", "autobus"]}]
    if not with_synonyms:
        for c in cats:
            del c["synonyms"]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    vocab = read_vocabulary(path)
    assert vocab.format == "annotations"
    assert [(c.name, c.category_id) for c in vocab.classes] == [("aerosol_can", 2), ("bus", 5), ("zebra", 9)]
    if with_synonyms:
        assert vocab.classes[1].synonyms == ("bus_(vehicle)", "autobus")  # as written, like Detic
    else:
        assert [c.synonyms for c in vocab.classes] == [("aerosol_can",), ("bus",), ("zebra",)]
    assert vocab.classes[0].where == f"{path}: category id 2"


def test_name_normalisation():
    assert normalise_name("  Hard_Hat ") == normalise_name("hard   hat") == "hard hat"
    assert normalise_name("Traffic-Cone") != normalise_name("traffic cone")


@pytest.mark.parametrize("name,content,message", [
    ("dup.txt", "cone\nhard hat\n\nHard_Hat, helmet\n", "line 4: class 'Hard_Hat' repeats 'hard hat' (line 2)"),
    ("dup.json", '[\n"cone",\n\n{"name": "CONE"}\n]', "line 4: class 'CONE' repeats 'cone' (line 2)"),
    ("dup.yaml", "- cone\n- name: x\n- name: Cone\n", "line 3: class 'Cone' repeats 'cone' (line 1)"),
    ("empty_name.txt", "cone\n , helmet\n", "line 2: empty class name"),
    ("empty_synonym.txt", "cone,\n", "line 1: empty synonym"),
    ("empty_name.json", '["a", {"name": "  "}]', "line 1: empty class name"),
    ("empty_name.yaml", "- a\n- name:\n", "line 2: empty class name"),
    ("empty.txt", "", "the vocabulary has no classes"),
    ("comments.txt", "# nothing\n\n   # here\n", "the vocabulary has no classes"),
    ("empty.json", "[ ]", "the vocabulary has no classes"),
    ("empty.yaml", "", "the vocabulary has no classes"),
    ("no_cats.json", '{"categories": []}', "the vocabulary has no classes"),
    ("lvis_dup.json", '{"categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "A"}]}',
     "category id 3: class 'A' repeats 'a' (category id 1)"),
    ("no_key.json", '{"images": []}', "no 'categories' key"),
    ("bad.json", '["a",\n "b" "c"]', "not valid JSON (line 2"),
    ("bad.yaml", "- a\n- [b\n", "not valid YAML (line"),
    ("mapping.yaml", "a: 1\n", "expected a YAML list of classes"),
    ("number.yaml", "- a\n- 1984\n", "line 2: class name 1984 is not a string"),
    ("unknown_key.json", '[{"name": "a", "synonym": ["b"]}]', "unknown key 'synonym'"),
    ("bad_bbox.json", '[{"name": "a", "exemplars": [{"image": "x.jpg", "bbox": [0, 0, 5]}]}]', "'bbox' must be"),
    ("zero_bbox.yaml", "- name: a\n  exemplars: [{image: x.jpg, bbox: [0, 0, 0, 5]}]\n", "has no area"),
    ("bad_synonyms.yaml", "- name: a\n  synonyms: b\n", "'synonyms' must be a list"),
    ("latin1.txt", b"caf\xe9\n", "not UTF-8 text"),
])
def test_bad_vocabularies_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(InputError) as info:
        read_vocabulary(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="vocabulary file not found"):
        read_vocabulary(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="found a folder"):
        read_vocabulary(tmp_path)
