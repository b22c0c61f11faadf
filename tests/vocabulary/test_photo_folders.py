"""Photo folders as people name them: loose class matching, did-you-mean, transparent and broken photos."""
import logging

import numpy as np
import pytest
from PIL import Image

from mmovod.clip.crops import decode_image
from mmovod.readers.exemplar_records import BadImageError
from mmovod.readers.photo_check import PhotoCheck
from mmovod.readers.vocabulary_file import read_vocabulary
from mmovod.vocabulary import exemplar_folders
from mmovod.vocabulary.exemplar_folders import class_matcher, collect_exemplars, did_you_mean, unmatched_names


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hard hat, safety helmet\ntraffic cone\nExcavator, digger\nice cream\nicecream maker\n")
    return read_vocabulary(path)


def photo(path, mode="RGB", colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (12, 10), colour).save(path)
    return path


@pytest.mark.parametrize("folder", ["hard-hat", "Hard_Hat", "HARD HAT", "hardhat", "Safety-Helmet", " hard - hat "])
def test_case_spaces_hyphens_and_underscores_do_not_matter(vocab, folder):
    assert class_matcher(vocab)(folder) == 0


def test_an_exact_spelling_wins_and_a_loose_one_needs_a_single_class(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("ice cream\nicecream\nt-shirt\n")
    match = class_matcher(read_vocabulary(path))
    assert (match("Ice_Cream"), match("icecream"), match("ice-cream"), match("T Shirt")) == (0, 1, None, 2)


def test_a_folder_matching_no_class_gets_the_closest_names(tmp_path, vocab, caplog):
    assert did_you_mean("hard-hats", vocab) == ["hard hat"]
    assert did_you_mean("traffic cones", vocab)[0] == "traffic cone"
    assert did_you_mean("giraffe", vocab) == []
    assert unmatched_names(["hardhats", "giraffe"], vocab) == "'hardhats' (did you mean 'hard hat'?), 'giraffe'"
    for rel in ("hard-hat/a.jpg", "hardhats/b.jpg", "giraffe/c.jpg"):
        photo(tmp_path / "photos" / rel)
    with caplog.at_level(logging.WARNING):
        result = collect_exemplars(vocab, tmp_path / "photos", progress=False)
    assert len(result.records[0]) == 1 and result.unmatched == ["giraffe", "hardhats"]
    assert "'hardhats' (did you mean 'hard hat'?)" in caplog.text
    assert "2 exemplar folders or categories match no class" in caplog.text


def test_transparent_photos_are_flattened_on_white_and_counted(tmp_path, vocab, caplog):
    clear = photo(tmp_path / "photos/traffic cone/clear.png", "RGBA", (0, 0, 255, 0))
    photo(tmp_path / "photos/traffic cone/half.png", "RGBA", (0, 0, 0, 128))
    photo(tmp_path / "photos/traffic cone/solid.png")
    with caplog.at_level(logging.INFO):
        collect_exemplars(vocab, tmp_path / "photos", progress=False)
    assert "2 photos have transparent parts: flattened on white" in caplog.text
    assert np.asarray(decode_image(clear).image)[0, 0].tolist() == [255, 255, 255]  # not the blue it hides
    half = np.asarray(decode_image(tmp_path / "photos/traffic cone/half.png").image)[0, 0]
    assert half.tolist() == [127, 127, 127]
    caplog.clear()
    (tmp_path / "photos/traffic cone/half.png").unlink()
    with caplog.at_level(logging.INFO):
        collect_exemplars(vocab, tmp_path / "photos", progress=False)
    assert "1 photo has transparent parts" in caplog.text


def test_a_truncated_jpeg_or_a_heic_photo_is_found_before_any_model(tmp_path, vocab, monkeypatch):
    folder = tmp_path / "photos/digger"
    good = photo(folder / "good.jpg")
    data = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(data).save(folder / "cut.jpg", quality=90)
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:3000])
    with pytest.raises(BadImageError, match=r"cut.jpg: cannot read image: image file is truncated.*a photo of 'Excavator'$") as err:
        collect_exemplars(vocab, tmp_path / "photos", progress=False)
    assert err.value.path == str(folder / "cut.jpg") and "--" not in str(err.value)  # the API names no flag
    (folder / "cut.jpg").unlink()
    (folder / "x.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(40))
    with pytest.raises(BadImageError, match="x.HEIC: HEIC photos are read by the pillow-heif plugin"):
        collect_exemplars(vocab, tmp_path / "photos", progress=False)
    result = collect_exemplars(vocab, tmp_path / "photos", skip_bad=True, progress=False)
    assert [r["file_name"] for r in result.records[2]] == [str(good)]
    assert result.ignored_files == 0  # a HEIC photo is a photo that cannot be read, not an ignored file
    # planted bug, a header-only check: the cut JPEG gets through to the model
    (folder / "x.HEIC").unlink()
    Image.fromarray(data).save(folder / "cut.jpg", quality=90)
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:3000])
    monkeypatch.setattr(exemplar_folders, "check_photos", lambda paths, workers, progress: [
        PhotoCheck(Image.open(p).size) for p in paths])
    assert len(collect_exemplars(vocab, tmp_path / "photos", progress=False).records[2]) == 2
