"""Generate full-scale synthetic inputs for the exemplar benchmarks (under bench/out/ by default).

  lvis/lvis_v1_train.json   --lvis-anns annotations (default 1.27M, LVIS's size) over 100K images,
                            each with a 40-number polygon, area spread around 32*32
  lvis/lvis_v1_val.json     the categories (every synset of mmovod's synset table)
  VisualGenome/             objects.json (--vg-images x --vg-objects objects, default 108K x 35 = 3.8M)
                            and image_data.json
  imagenet/imagenet21k_P/   --imagenet-images JPEGs (default 20,000) of 250-500 x 200-400 pixels in
                            LVIS wnid folders of train/, val/, imagenet21k_small_classes/ and some
                            non-LVIS folders; a few carry an EXIF rotation, one is corrupt

Example (run heavy work under the shared lock):
  flock /tmp/mmovod-bench.lock python bench/make_synthetic.py --out bench/out/full
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmovod.readers.synset_table import synset_table  # noqa: E402

CHUNK = 20000


def categories() -> list[dict]:
    return [{"id": i + 1, "name": s.rsplit(".", 2)[0], "synset": s, "frequency": "cfr"[i % 3]}
            for i, s in enumerate(sorted(synset_table()))]


def write_json_list(path: Path, n: int, make_chunk, head: bytes = b"", tail: bytes = b"") -> None:
    """Write `head [items...] tail` where make_chunk(start, stop) returns a list of items."""
    with open(path, "wb") as out:
        out.write(head + b"[")
        for start in range(0, n, CHUNK):
            items = make_chunk(start, min(n, start + CHUNK))
            if start:
                out.write(b",")
            out.write(orjson.dumps(items)[1:-1])
        out.write(b"]" + tail)


def make_lvis(out: Path, n_anns: int, n_images: int, rng: np.random.Generator) -> None:
    cats = categories()
    (out / "lvis").mkdir(parents=True, exist_ok=True)
    (out / "lvis" / "lvis_v1_val.json").write_bytes(orjson.dumps({"images": [], "annotations": [], "categories": cats}))
    images = [{"id": i, "coco_url": f"http://images.cocodataset.org/{'train2017' if i % 10 else 'val2017'}/{i:012d}.jpg",
               "width": 640, "height": 480, "neg_category_ids": [], "not_exhaustive_category_ids": []}
              for i in range(1, n_images + 1)]
    # category frequencies follow a long tail, as in LVIS
    weights = 1.0 / np.arange(1, len(cats) + 1) ** 1.1
    weights /= weights.sum()

    def chunk(start, stop):
        n = stop - start
        cat_ids = rng.choice(len(cats), size=n, p=weights) + 1
        img_ids = rng.integers(1, n_images + 1, size=n)
        wh = rng.uniform(5, 200, size=(n, 2)).round(2)
        xy = rng.uniform(0, 400, size=(n, 2)).round(2)
        polys = rng.uniform(0, 640, size=(n, 40)).round(2)
        return [{"area": round(float(wh[i, 0] * wh[i, 1] * 0.8), 2), "id": start + i + 1,
                 "segmentation": [polys[i].tolist()], "image_id": int(img_ids[i]),
                 "bbox": [float(xy[i, 0]), float(xy[i, 1]), float(wh[i, 0]), float(wh[i, 1])],
                 "category_id": int(cat_ids[i])} for i in range(n)]

    head = b'{"info":{"description":"synthetic"},"licenses":[],"images":' + orjson.dumps(images) + b',"annotations":'
    tail = b',"categories":' + orjson.dumps(cats) + b"}"
    write_json_list(out / "lvis" / "lvis_v1_train.json", n_anns, chunk, head, tail)


def make_visual_genome(out: Path, n_images: int, per_image: int, rng: np.random.Generator) -> None:
    vg = out / "VisualGenome"
    vg.mkdir(parents=True, exist_ok=True)
    lvis_synsets = sorted(synset_table())
    other = [f"thing{i}.n.01" for i in range(3000)]
    pool = np.array(other + lvis_synsets)
    (vg / "image_data.json").write_bytes(orjson.dumps([
        {"width": 800, "url": f"https://cs.stanford.edu/people/rak248/{'VG_100K' if i < n_images // 2 else 'VG_100K_2'}/{i}.jpg",
         "height": 600, "image_id": i, "coco_id": None, "flickr_id": None} for i in range(1, n_images + 1)]))
    object_id = [0]

    def chunk(start, stop):
        items = []
        for image_id in range(start + 1, stop + 1):
            n = per_image
            picks = pool[rng.integers(0, len(pool), size=(n, 2))]
            kind = rng.random(n)
            wh = rng.integers(2, 300, size=(n, 2))
            xy = rng.integers(0, 500, size=(n, 2))
            objects = []
            for j in range(n):
                object_id[0] += 1
                synsets = [] if kind[j] < 0.15 else ([picks[j, 0], picks[j, 1]] if kind[j] > 0.97 else [picks[j, 0]])
                objects.append({"synsets": [str(s) for s in synsets], "h": int(wh[j, 1]), "object_id": object_id[0],
                                "merged_object_ids": [], "names": [str(s).split(".")[0] for s in synsets],
                                "w": int(wh[j, 0]), "y": int(xy[j, 1]), "x": int(xy[j, 0])})
            items.append({"image_id": image_id, "objects": objects})
        return items

    write_json_list(vg / "objects.json", n_images, chunk)


def make_imagenet(out: Path, n_images: int, rng: np.random.Generator) -> None:
    """JPEG files: 200 distinct encodings, each written to many paths (size reading cost does not depend on content)."""
    tree = out / "imagenet" / "imagenet21k_P"
    encoded = []
    for k in range(200):
        w, h = int(rng.integers(250, 501)), int(rng.integers(200, 401))
        pixels = (np.linspace(0, 255, w)[None, :, None] + np.linspace(0, 120, h)[:, None, None]
                  + rng.normal(0, 12, (h, w, 3)))
        extra = {}
        if k % 50 == 0:  # a few carry an EXIF block with a rotation; most ImageNet JPEGs have none
            exif = Image.Exif()
            exif[0x0112] = 6
            extra["exif"] = exif.tobytes()
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90, **extra)
        encoded.append(buf.getvalue())
    wnids = sorted({e.wnid for e in synset_table().values() if e.wnid})[:400]
    folders = ([("train", w) for w in wnids[:300]] + [("val", w) for w in wnids[:300:3]]
               + [("imagenet21k_small_classes", w) for w in wnids[300:]]
               + [("train", f"n9{i:07d}") for i in range(20)])  # not LVIS wnids
    for i in range(n_images):
        split, wnid = folders[i % len(folders)]
        folder = tree / split / wnid
        folder.mkdir(parents=True, exist_ok=True)
        data = b"corrupt" if i == 7 else encoded[i % len(encoded)]
        (folder / f"{wnid}_{i}.JPEG").write_bytes(data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/out/full")
    parser.add_argument("--lvis-anns", type=int, default=1_270_000)
    parser.add_argument("--lvis-images", type=int, default=100_000)
    parser.add_argument("--vg-images", type=int, default=108_000)
    parser.add_argument("--vg-objects", type=int, default=35, help="objects per VG image")
    parser.add_argument("--imagenet-images", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="imagenet,lvis,vg", help="which inputs to (re)write")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    (out / "imagenet" / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for name, step in (("imagenet", lambda: make_imagenet(out, args.imagenet_images, rng)),
                       ("lvis", lambda: make_lvis(out, args.lvis_anns, args.lvis_images, rng)),
                       ("vg", lambda: make_visual_genome(out, args.vg_images, args.vg_objects, rng))):
        if name not in args.parts.split(","):
            continue
        t = time.perf_counter()
        step()
        print(f"{name}: {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
