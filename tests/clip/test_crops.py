"""Crop geometry on hand-worked cases, and image opening (EXIF, modes, bad files)."""
import io

import pytest
from PIL import Image

from mmovod.clip.crops import AGGREGATOR_CONTEXT, TTA_CONTEXT, load_exemplar_crop, open_image
from mmovod.readers.exemplar_records import BadImageError, exemplar_crop_box
from mmovod.io.errors import InputError


def lvis(bbox):
    return {"dataset": "lvis", "file_name": "train2017/x.jpg", "bbox": bbox}


def vg(x, y, w, h):
    return {"dataset": "visual_genome", "file_name": "VG_100K/1.jpg", "x": x, "y": y, "w": w, "h": h}


@pytest.mark.parametrize("record, size, context, expected", [
    # box [10, 20, 31, 41], centre (25.5, 40.5); 0.4: side 57.4 -> (-3.2, 11.8, 54.2, 69.2)
    (lvis([10.5, 20.7, 30.2, 40.9]), (640, 480), TTA_CONTEXT, (0, 11, 54, 69)),
    # 0.2: side 49.2 -> (0.9, 15.9, 50.1, 65.1)
    (lvis([10.5, 20.7, 30.2, 40.9]), (640, 480), AGGREGATOR_CONTEXT, (0, 15, 50, 65)),
    # bottom-right border: box [600, 450, 40, 30], side 56 around (620, 465) -> clamped to 640 x 480
    (lvis([600, 450, 39.9, 29.5]), (640, 480), TTA_CONTEXT, (592, 437, 640, 480)),
    # zero-size LVIS box becomes 1 x 1 at (100, 50): side 1.4 around (100.5, 50.5)
    (lvis([100.2, 50.7, 0, 0]), (640, 480), TTA_CONTEXT, (99, 49, 101, 51)),
    (lvis([100.2, 50.7, 0, 0]), (640, 480), AGGREGATOR_CONTEXT, (99, 49, 101, 51)),
    # VG ints: (10, 5, 20, 10), centre (20, 10), side 24 -> (8, -2, 32, 22), top clamped
    (vg(10.9, 5, 20.7, 10), (100, 100), AGGREGATOR_CONTEXT, (8, 0, 32, 22)),
    # VG zero area: empty box widened to one pixel
    (vg(50, 50, 0, 0), (100, 100), TTA_CONTEXT, (50, 50, 51, 51)),
    # box entirely outside the image: clamped to the last pixel, never empty
    (lvis([700, 500, 10, 10]), (640, 480), TTA_CONTEXT, (639, 479, 640, 480)),
    # ImageNet: the whole image, context ignored
    ({"dataset": "imagenet21k", "file_name": "a.JPEG"}, (333, 500), TTA_CONTEXT, (0, 0, 333, 500)),
])
def test_crop_box_hand_worked(record, size, context, expected):
    assert exemplar_crop_box(record, size[0], size[1], context) == expected


def test_bad_records_raise_one_line():
    with pytest.raises(InputError, match="unknown exemplar dataset 'coco'"):
        exemplar_crop_box({"dataset": "coco", "file_name": "a.jpg"}, 10, 10, 0.4)
    with pytest.raises(InputError, match="'bbox' must be"):
        exemplar_crop_box(lvis([1, 2, 3]), 10, 10, 0.4)
    with pytest.raises(InputError, match="'w' must be a finite number"):
        exemplar_crop_box(vg(1, 2, None, 3), 10, 10, 0.4)


def save(path, image, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kw)
    return path


@pytest.mark.parametrize("mode, fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                       ("I;16", "PNG"), ("LA", "PNG"), ("RGB", "PNG")])
def test_open_image_converts_every_mode_to_rgb(tmp_path, mode, fmt):
    path = save(tmp_path / f"im.{fmt.lower()}", Image.new(mode, (12, 8)), format=fmt)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (12, 8)


def test_exif_orientation_is_applied_before_cropping(tmp_path):
    # 40 x 20 stored, orientation 6 (rotate 90 clockwise on display) -> 20 x 40, left half red
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 10))  # top rows red -> right columns after rotation
    exif = Image.Exif()
    exif[0x0112] = 6
    save(tmp_path / "coco/train2017/r.jpg", stored, exif=exif, quality=100)
    record = {"dataset": "lvis", "file_name": "train2017/r.jpg", "bbox": [10, 0, 9, 39]}
    crop = load_exemplar_crop(record, {"lvis": tmp_path / "coco"}, 0.0)
    # box [10, 0, 10, 40] -> side 40 around (15, 20) -> (0, 0, 20, 40) in the 20 x 40 upright image
    assert crop.size == (20, 40)
    assert crop.getpixel((17, 20))[0] > 200 and crop.getpixel((2, 20))[2] > 200


def test_bad_images_name_the_file(tmp_path):
    with pytest.raises(BadImageError, match="missing.jpg: image not found"):
        open_image(tmp_path / "missing.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(BadImageError, match="junk.jpg: cannot read image"):
        open_image(tmp_path / "junk.jpg")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImageError, match="cut.jpg: cannot read image"):
        open_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path, fmt, monkeypatch):
    """A 16-bit grey ramp keeps its shades (value / 257); Pillow's plain conversion clipped all but the
    darkest pixels to white."""
    import numpy as np

    from mmovod.clip import crops

    ramp = np.linspace(0, 65535, 16 * 8).reshape(8, 16).astype(np.uint16)
    path = save(tmp_path / f"ramp.{fmt.lower()}", Image.fromarray(ramp), format=fmt)
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    pixels = np.asarray(open_image(path))
    assert (pixels == expected[:, :, None]).all()
    monkeypatch.setattr(crops, "eight_bit", lambda image: image)  # the slip: Pillow's own conversion
    clipped = np.asarray(open_image(path))
    assert (clipped == 255).mean() > 0.9 and not (clipped == expected[:, :, None]).all()
