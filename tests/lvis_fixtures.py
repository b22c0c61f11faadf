"""Small hand-built LVIS documents for the LVIS step tests."""
import json


def category(cid, freq="c", **extra):
    return {"id": cid, "name": f"cat{cid}", "synset": f"cat{cid}.n.01", "frequency": freq, **extra}


def annotation(aid, image_id, cid, poly=None):
    return {
        "id": aid, "image_id": image_id, "category_id": cid, "bbox": [1.5, 2.0, 3.25, 4.0], "area": 13.0,
        "segmentation": poly if poly is not None else [[1.5, 2.0, 4.75, 2.0, 4.75, 6.0, 1.5, 6.0]],
    }


def write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def small_doc():
    """3 categories (r, c, f), 3 images, 6 annotations: hand-countable."""
    cats = [category(1, "r"), category(2, "c"), category(3, "f")]
    anns = [
        annotation(10, 100, 1), annotation(11, 100, 2), annotation(12, 101, 2),
        annotation(13, 101, 3), annotation(14, 101, 3), annotation(15, 102, 1),
    ]
    images = [
        {"id": 100, "width": 10, "height": 10, "pos_category_ids": [1, 2]},
        {"id": 101, "width": 10, "height": 10, "pos_category_ids": [2, 3]},
        {"id": 102, "width": 10, "height": 10, "pos_category_ids": [3]},
    ]
    return {"info": {"v": 1}, "images": images, "annotations": anns, "categories": cats, "licenses": []}
