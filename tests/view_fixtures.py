"""Natural-looking generated images for the view tests: smooth colour fields with hard-edged shapes."""
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torchvision import transforms as T

PREPROCESS = T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                        T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])


def photo(seed: int, width: int, height: int) -> Image.Image:
    """A smooth random colour field (bicubic-upsampled noise) with a few sharp ellipses."""
    rng = np.random.default_rng(seed)
    field = Image.fromarray(rng.integers(30, 226, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(field)
    for _ in range(8):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * min(width, height)
        draw.ellipse([x - r, y - 0.7 * r, x + r, y + 0.7 * r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return field.filter(ImageFilter.GaussianBlur(0.6))
