"""Time and peak memory per photo of the build report (`build_classifiers.py --report`) on phone-size
photos: the report as it is (each contact-sheet crop decoded reduced, `Image.draft`, to what its
128-pixel tile needs) against the baseline in the same run (the previous report: every crop decoded at
full size, then shrunk to its tile), each in its own process on the same photos. In the default fast
view order the report decodes each photo once, reduced as the encoder reduces it, and makes view 0
alone; the baseline decoded it twice (once at full size) and made all of its views.

Inputs: --photos whole-image JPEGs of --size (default 2000x1500, a phone photo), --per-class per class,
made from a few distinct natural-looking images (bench/natural_images.py; decoding cost does not depend
on which); CLIP ViT-B/32's preprocessing (224 px views; the report needs no weights), 5 TTA views, the
build's context; torch on --threads threads (default 1: the view ops are small, and on a shared machine
more threads measure the other jobs). Printed per variant: seconds per photo of `write_report` (CPU, one process), the
total for 600 photos, and the process's peak RSS. Example (docs/performance.md's figures):
  flock /tmp/mmovod-bench.lock python bench/bench_build_report.py --photos 120
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.natural_images import natural_image  # noqa: E402

VARIANTS = ("ours", "baseline")
DISTINCT = 4


def make_photos(root: Path, photos: int, per_class: int, width: int, height: int) -> Path:
    """`photos` JPEGs in folders of `per_class` (copies of DISTINCT natural images); returns the vocabulary file."""
    rng = np.random.default_rng(0)
    payloads = []
    for k in range(DISTINCT):
        natural_image(rng, height, width).save(root / f"base{k}.jpg", quality=90)
        payloads.append((root / f"base{k}.jpg").read_bytes())
    classes = -(-photos // per_class)
    for n in range(photos):
        folder = root / "photos" / f"class {n // per_class:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n}.jpg").write_bytes(payloads[n % DISTINCT])
    vocab = root / "vocab.txt"
    vocab.write_text("".join(f"class {c:04d}\n" for c in range(classes)))
    return vocab


def run_variant(variant: str, root: Path, threads: int) -> dict[str, float]:
    """Write the report of the photos under `root` (in this process); seconds and peak RSS."""
    import open_clip
    import torch

    from mmovod.clip.crops import TTA_CONTEXT, load_exemplar_crop
    from mmovod.clip.exemplar_views import exemplar_input
    from mmovod.clip.specs import ViewSpec
    from mmovod.readers.vocabulary_file import read_vocabulary
    from mmovod.vocabulary import build_report

    torch.set_num_threads(threads)
    vocab = read_vocabulary(root / "vocab.txt")
    records = [[{"dataset": "file", "file_name": str(p)} for p in sorted((root / "photos" / name).glob("*.jpg"))]
               for name in vocab.names]
    bundle = SimpleNamespace(preprocess=open_clip.image_transform(224, is_train=False), image_size=224)
    if variant == "baseline":  # the previous report: the crop decoded at full size, all views made for view 0
        def previous_pair(record, class_index, exemplar_index, plan, context):
            views = exemplar_input(record, {}, context, replace(plan, defer=False), class_index, exemplar_index).views
            return load_exemplar_crop(record, {}, context), build_report._image(views[0])
        build_report.sheet_pair = previous_pair
    rows = np.random.default_rng(1).standard_normal((len(vocab), 512)).astype(np.float32)
    start = time.perf_counter()
    build_report.write_report(root / variant, vocab, records, bundle, ViewSpec(num_views=5, tta=True, context=TTA_CONTEXT),
                        rows, "multi-modal-average", progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "photos": sum(map(len, records)),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=120, help="number of photos (default 120)")
    parser.add_argument("--per-class", type=int, default=10, help="photos per class (default 10)")
    parser.add_argument("--size", default="2000x1500", help="photo width x height (default 2000x1500)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child's run
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, Path(args.root), args.threads)))
        return
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photos(root, args.photos, args.per_class, width, height)
        print(f"report of {args.photos} photos of {width}x{height}, {args.per_class} per class, one process each:")
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--root", str(root),
                                  "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True).stdout
            m = json.loads(out.strip().splitlines()[-1])
            per = m["seconds"] / m["photos"]
            print(f"  {variant:8s} {per:.4f} s per photo ({600 * per:.0f} s for 600 photos), "
                  f"peak RSS {m['peak_rss_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
