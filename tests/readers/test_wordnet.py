from pathlib import Path

import pytest

from mmovod.io.errors import InputError
from mmovod.readers.synset_table import STAND_INS, build_synset_table, cousin_table, lookup, synset_table
from mmovod.readers.wordnet import WordNetNouns, split_synset_name

DATA = Path(__file__).parents[1] / "data"

LICENCE = "  1 This software and database is being provided to you\n"
INDEX = LICENCE + (
    "book n 3 2 @ ~ 3 1 00000100 00000200 00000300  \n"
    "street_sign n 1 1 @ 1 0 00000400  \n"
)
DATA_NOUN = LICENCE + (
    "00000100 10 n 02 book 0 volume 0 000 | a written work  \n"
    "00000200 10 n 01 book 0 000 | a record  \n"
    "00000300 06 n 03 Bible 0 Good_Book 0 book 4 000 | the sacred writings  \n"
    "00000400 06 n 01 street_sign 0 000 | a sign  \n"
)


@pytest.fixture
def wordnet(tmp_path):
    (tmp_path / "index.noun").write_text(INDEX)
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    return WordNetNouns(tmp_path)


def test_sense_number_picks_the_offset_on_the_index_line(wordnet):
    assert wordnet.offset("book.n.01") == "00000100"
    assert wordnet.offset("book.n.03") == "00000300"
    assert wordnet.offset("book.n.04") is None
    assert wordnet.offset("stop_sign.n.01") is None
    assert wordnet.lemma_names("00000300") == ["Bible", "Good_Book", "book"]


def test_table_rows_and_stand_in(wordnet):
    rows = build_synset_table(wordnet, ["book.n.03", "stop_sign.n.01", "book.n.03"])
    assert rows == {
        "book.n.03": {"wnid": "n00000300", "wordnet": "book.n.03", "lemmas": ["Bible", "Good_Book", "book"]},
        "stop_sign.n.01": {"wnid": None, "wordnet": "street_sign.n.01", "lemmas": ["street_sign"]},
    }
    with pytest.raises(InputError, match="not a WordNet"):
        build_synset_table(wordnet, ["nosuch.n.01"])


def test_split_synset_name():
    assert split_synset_name("st._bernard.n.01") == ("st._bernard", "n", 1)
    with pytest.raises(InputError):
        split_synset_name("aerosol")


def test_shipped_table_covers_imagenet_lvis_wnids_and_cousins():
    table = synset_table()
    wnids = {e.wnid for e in table.values()}
    assert set((DATA / "imagenet_lvis_wnid.txt").read_text().split()) <= wnids
    assert table["aerosol.n.02"].wnid == "n02682922"
    assert table["stop_sign.n.01"].wnid is None and table["stop_sign.n.01"].wordnet == STAND_INS["stop_sign.n.01"]
    cousins = cousin_table()
    assert len(cousins) == 43 and cousins["beach_ball.n.01"] == ["volleyball.n.02"]
    assert all(c in table for subs in cousins.values() for c in subs)
    with pytest.raises(InputError, match="x.json: synset 'nosuch.n.01'"):
        lookup("nosuch.n.01", "x.json")
