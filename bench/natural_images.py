"""Natural-looking test photos without downloads: a dead-leaves image (occluding ellipses whose sizes
follow a power law, the classic model of natural-image statistics) over a 1/f colour texture, slightly
blurred and shaded, saved as JPEG. Used by the exemplar-view benchmarks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def natural_image(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """An RGB `width` x `height` dead-leaves image with 1/f texture."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.sqrt(np.maximum(fx ** 2 + fy ** 2, 1.0 / max(height, width) ** 2))
    texture = []
    for _ in range(3):
        noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((height, width))) * amplitude, s=(height, width))
        texture.append((noise - noise.mean()) / noise.std())
    texture = np.stack(texture, -1)
    image = Image.fromarray(np.clip(rng.integers(40, 216, 3) + 25 * texture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        r = max(width, height) * 0.4 * rng.random() ** 2 + 3
        x, y, a = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.5, 1.5)
        draw.ellipse([x - r * a, y - r / a, x + r * a, y + r / a], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    shaded = np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32) + 12 * texture[::-1, ::-1]
    return Image.fromarray(np.clip(shaded, 0, 255).astype(np.uint8))


def make_exemplars(root: Path, classes: int, exemplars: int, size: tuple[int, int] = (640, 480), seed: int = 0,
                   whole_every: int = 0, distinct: int | None = None) -> list[list[dict]]:
    """`classes` x `exemplars` LVIS-style records, one box each, on `size` JPEGs under `root`/train2017
    (quality 90); with `whole_every` n, every n-th record is an ImageNet-style whole image instead.
    With `distinct` n, only n images are made and the records cycle through them (with their own boxes),
    which keeps large scales quick to generate."""
    rng = np.random.default_rng(seed)
    width, height = size
    (root / "train2017").mkdir(parents=True, exist_ok=True)
    out = []
    for c in range(classes):
        records = []
        for e in range(exemplars):
            index = c * exemplars + e
            name = f"train2017/{index % distinct if distinct else index:06d}.jpg"
            if not (root / name).exists():
                natural_image(rng, height, width).save(root / name, quality=90)
            if whole_every and index % whole_every == 0:
                records.append({"dataset": "imagenet21k", "file_name": name})
                continue
            w, h = rng.uniform(0.06, 0.6) * width, rng.uniform(0.06, 0.6) * height
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            records.append({"dataset": "lvis", "file_name": name, "bbox": [x, y, w, h]})
        out.append(records)
    return out
