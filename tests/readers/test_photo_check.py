"""Every photo is decoded once before any model loads: truncated, unknown and plugin formats, size, transparency."""
import io
import threading

import numpy as np
from PIL import Image

from mmovod.readers import photo_check
from mmovod.readers.photo_check import check_photo, check_photos


def jpeg_bytes(size=(320, 240), exif_orientation=None):
    array = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_a_truncated_jpeg_fails_though_its_header_reads(tmp_path):
    data = jpeg_bytes()
    whole, cut = tmp_path / "whole.jpg", tmp_path / "cut.jpg"
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) // 2])
    assert check_photo(str(whole)) == photo_check.PhotoCheck((320, 240))
    with Image.open(cut) as image:
        assert image.size == (320, 240)  # a header-only check passes it
    found = check_photo(str(cut))
    assert found.size is None and found.problem.startswith("cannot read image: image file is truncated")


def test_size_is_as_displayed_and_transparency_is_noticed(tmp_path):
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(jpeg_bytes(exif_orientation=6))
    assert check_photo(str(turned)).size == (240, 320)
    Image.new("RGBA", (10, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGB", (10, 8)).save(tmp_path / "opaque.png")
    palette = Image.new("P", (10, 8))
    palette.save(tmp_path / "keyed.png", transparency=0)
    assert [check_photo(str(tmp_path / n)).alpha for n in ("clear.png", "opaque.png", "keyed.png")] == [True, False, True]


def test_missing_unknown_and_plugin_formats_say_why(tmp_path):
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(40))
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    assert check_photo(str(tmp_path / "nope.jpg")).problem == "image not found"
    assert check_photo(str(tmp_path / "junk.jpg")).problem == "cannot read image: not an image format Pillow knows"
    assert "pillow-heif plugin" in check_photo(str(tmp_path / "photo.heic")).problem
    (tmp_path / "empty.jpg").write_bytes(b"")  # an interrupted copy: said as such, not as an unknown format
    assert check_photo(str(tmp_path / "empty.jpg")).problem == "empty file (0 bytes): copy the photo again"


def test_photos_are_checked_in_threads_in_order(tmp_path, monkeypatch):
    paths = []
    for n in range(6):
        path = tmp_path / f"{n}.png"
        Image.new("RGB", (10 + n, 5)).save(path)
        paths.append(str(path))
    seen = set()
    real = photo_check.check_photo
    monkeypatch.setattr(photo_check, "check_photo", lambda p: seen.add(threading.get_ident()) or real(p))
    checks = check_photos(paths, workers=3, progress=False)
    assert [c.size for c in checks] == [(10 + n, 5) for n in range(6)]
    assert threading.get_ident() not in seen
