import argparse
from pathlib import Path

import pytest

from mmovod.io.errors import InputError
from mmovod.cli.flags import add_image_root_args, image_roots_from_args
from mmovod.readers.image_roots import record_image_path


def test_flags_defaults_and_paths():
    parser = argparse.ArgumentParser()
    add_image_root_args(parser)
    roots = image_roots_from_args(parser.parse_args([]))
    assert roots == {"lvis": Path("datasets/coco"), "imagenet21k": Path("datasets/imagenet"),
                     "visual_genome": Path("datasets/VisualGenome")}
    roots = image_roots_from_args(parser.parse_args(["--imagenet-img-dir", "/data/in"]))
    rec = {"dataset": "imagenet21k", "file_name": "imagenet21k_P/train/n1/n1_1.JPEG"}
    assert record_image_path(rec, roots) == Path("/data/in/imagenet21k_P/train/n1/n1_1.JPEG")
    rec = {"dataset": "visual_genome", "file_name": "VG_100K/1.jpg"}
    assert record_image_path(rec, roots) == Path("datasets/VisualGenome/VG_100K/1.jpg")


def test_unknown_dataset_and_missing_file_name():
    roots = {"lvis": Path("c")}
    with pytest.raises(InputError, match="unknown exemplar dataset 'o365'"):
        record_image_path({"dataset": "o365", "file_name": "a"}, roots)
    with pytest.raises(InputError, match="without a 'file_name'"):
        record_image_path({"dataset": "lvis"}, roots)
