"""The demo world: 40 procedural object classes drawn into cluttered scenes, with their boxes.

Each of the demo's 40 LVIS categories is drawn as one object kind: a shape (disc, square, star, ...)
in a colour with a surface pattern (solid, striped, dotted). Kinds share colours and shapes, so some
pairs differ in one attribute only (a red bookmark is a solid red bar, a carpet runner a striped one)
and their confusions are visible. Scenes have a smooth, noisy background, clutter (lines and small
blobs), several class objects at random position, size and rotation, and sometimes an unannotated
look-alike whose name is a homonym of a class name (an ice-cream "cornet", a hair "bun", a roller
"coaster"): the class name alone is ambiguous there, the class's descriptions are not.

Everything is drawn from a `numpy.random.Generator` passed in, so a seed fixes every pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "purple": (135, 45, 185),
    "pink": (250, 125, 190),
    "brown": (125, 75, 35),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("disc", "ring", "square", "triangle", "star", "cross", "hexagon", "diamond", "bar", "crescent")
PATTERNS = ("solid", "striped", "dotted")


@dataclass(frozen=True)
class Kind:
    """How one object kind looks."""

    shape: str
    colour: str
    pattern: str

    def phrase(self) -> str:
        """`a striped red bar`-style noun phrase (without the article)."""
        pattern = "" if self.pattern == "solid" else self.pattern + " "
        return f"{pattern}{self.colour} {self.shape}"


# the demo's LVIS category names -> their look in the world
CLASS_KINDS = {
    "aerosol_can": Kind("bar", "blue", "solid"),
    "air_conditioner": Kind("square", "white", "striped"),
    "anklet": Kind("ring", "yellow", "solid"),
    "applesauce": Kind("disc", "yellow", "dotted"),
    "beachball": Kind("disc", "blue", "striped"),
    "cow": Kind("square", "black", "dotted"),
    "Bible": Kind("square", "black", "solid"),
    "blackberry": Kind("disc", "purple", "dotted"),
    "bookmark": Kind("bar", "red", "solid"),
    "bun": Kind("disc", "brown", "solid"),
    "cantaloup": Kind("disc", "orange", "dotted"),
    "checkbook": Kind("square", "green", "solid"),
    "coaster": Kind("ring", "brown", "solid"),
    "cornbread": Kind("hexagon", "yellow", "solid"),
    "cornet": Kind("triangle", "yellow", "solid"),
    "doorknob": Kind("disc", "yellow", "solid"),
    "dropper": Kind("bar", "white", "solid"),
    "easel": Kind("triangle", "brown", "striped"),
    "gemstone": Kind("diamond", "green", "solid"),
    "gift_wrap": Kind("square", "red", "striped"),
    "grape": Kind("disc", "purple", "solid"),
    "popsicle": Kind("bar", "pink", "solid"),
    "jam": Kind("hexagon", "purple", "solid"),
    "ladder": Kind("bar", "brown", "striped"),
    "manatee": Kind("crescent", "blue", "solid"),
    "motor_scooter": Kind("cross", "red", "solid"),
    "nest": Kind("ring", "brown", "dotted"),
    "wooden_leg": Kind("bar", "brown", "solid"),
    "pickup_truck": Kind("cross", "blue", "solid"),
    "pinecone": Kind("triangle", "brown", "dotted"),
    "puppet": Kind("star", "pink", "solid"),
    "runner_(carpet)": Kind("bar", "red", "striped"),
    "sausage": Kind("crescent", "red", "solid"),
    "shears": Kind("cross", "white", "solid"),
    "step_stool": Kind("star", "orange", "solid"),
    "stirrup": Kind("diamond", "white", "striped"),
    "stop_sign": Kind("hexagon", "red", "solid"),
    "sugarcane_(plant)": Kind("bar", "green", "striped"),
    "tissue_paper": Kind("square", "white", "solid"),
    "turban": Kind("disc", "orange", "striped"),
}

# unannotated look-alikes: (name as people say it, what it is, how it looks)
HOMONYMS = (
    ("cornet", "an ice cream cone", Kind("triangle", "orange", "dotted")),
    ("bun", "hair tied in a knot", Kind("disc", "black", "striped")),
    ("coaster", "a roller coaster ride", Kind("star", "green", "striped")),
)

SCENE_SIZE = ((160, 321), (120, 241))  # width, height ranges (end exclusive)
OBJECT_SIZE = (34, 90)
MAX_OBJECTS = 5
HOMONYM_PROBABILITY = 0.35


def _polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape in unit coordinates ([-1, 1], centred)."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                 -(1.0 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5)) for i in range(10)]
    if shape == "cross":
        a, b = 1.0, 0.33
        return [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)]
    if shape == "hexagon":
        return [(math.cos(i * math.pi / 3), math.sin(i * math.pi / 3)) for i in range(6)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)]
    if shape == "bar":
        return [(-1.0, -0.26), (1.0, -0.26), (1.0, 0.26), (-1.0, 0.26)]
    raise ValueError(f"not a polygon shape: {shape}")


def _rotate(points: list[tuple[float, float]], angle: float, scale: float, centre: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(centre + scale * (x * c - y * s), centre + scale * (x * s + y * c)) for x, y in points]


def shape_mask(shape: str, size: int, angle: float) -> Image.Image:
    """An `L` mask (size x size) of the shape, rotated by `angle` radians, filling most of the square."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    r = (size - 1) / 2.0
    if shape in ("disc", "ring", "crescent"):
        draw.ellipse([0, 0, size - 1, size - 1], fill=255)
        if shape == "ring":
            t = size * 0.2
            draw.ellipse([t, t, size - 1 - t, size - 1 - t], fill=0)
        elif shape == "crescent":
            dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
            draw.ellipse([dx, dy, size - 1 + dx, size - 1 + dy], fill=0)
    else:
        draw.polygon(_rotate(_polygon(shape), angle, r, r), fill=255)
    return mask


def _contrast_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (25, 25, 25) if sum(rgb) > 360 else (240, 240, 240)


def _surface(kind: Kind, size: int, angle: float, rng: np.random.Generator) -> Image.Image:
    """The object's RGB surface (colour, pattern, a little shading noise) on a size x size square."""
    colour = np.array(COLOURS[kind.colour], dtype=np.float32)
    pixels = np.empty((size, size, 3), dtype=np.float32)
    pixels[:] = colour
    if kind.pattern != "solid":
        other = np.array(_contrast_colour(COLOURS[kind.colour]), dtype=np.float32)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        period = size / 4.0
        if kind.pattern == "striped":
            u = xx * math.cos(angle) + yy * math.sin(angle)
            on = (u % period) < period * 0.45
        else:
            ox, oy = rng.uniform(0, period, size=2)
            dx = ((xx + ox) % period) - period / 2
            dy = ((yy + oy) % period) - period / 2
            on = dx * dx + dy * dy < (period * 0.24) ** 2
        pixels[on] = other
    pixels += rng.normal(0.0, 8.0, size=(size, size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def draw_object(image: Image.Image, kind: Kind, x: int, y: int, size: int, angle: float,
                rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """Paste `kind` into `image` with its square's corner at (x, y); returns its tight box (x, y, w, h) in
    the image, or None when nothing of it is visible."""
    mask = shape_mask(kind.shape, size, angle)
    image.paste(_surface(kind, size, angle, rng), (x, y), mask)
    tight = mask.getbbox()
    if tight is None:
        return None
    left, upper = max(0, x + tight[0]), max(0, y + tight[1])
    right, lower = min(image.width, x + tight[2]), min(image.height, y + tight[3])
    if right <= left or lower <= upper:
        return None
    return left, upper, right - left, lower - upper


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random colour field with pixel noise, lines and small blobs (the clutter)."""
    grid = rng.integers(60, 200, size=(3, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(grid, "RGB").resize((width, height), Image.BILINEAR), dtype=np.int16)
    noise = rng.integers(-22, 23, size=(height, width, 1), dtype=np.int16)
    image = Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(v) for v in rng.integers(40, 220, size=3))
        x0, x1 = rng.integers(0, width, size=2)
        y0, y1 = rng.integers(0, height, size=2)
        draw.line([int(x0), int(y0), int(x1), int(y1)], fill=colour, width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(2, 8))):
        colour = tuple(int(v) for v in rng.integers(40, 220, size=3))
        s = int(rng.integers(4, 15))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw.ellipse([x, y, x + s, y + int(s * rng.uniform(0.5, 1.5))], fill=colour)
    return image


def overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]], limit: float) -> bool:
    """Whether `box` (x, y, w, h) covers more than `limit` of the smaller of itself and any of `boxes`."""
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        iw = min(x + w, bx + bw) - max(x, bx)
        ih = min(y + h, by + bh) - max(y, by)
        if iw > 0 and ih > 0 and iw * ih > limit * min(w * h, bw * bh):
            return True
    return False


def render_scene(rng: np.random.Generator, classes: list[str], width: int | None = None,
                 height: int | None = None, max_objects: int = MAX_OBJECTS
                 ) -> tuple[Image.Image, list[tuple[str, tuple[int, int, int, int]]], list[tuple[str, tuple[int, int, int, int]]]]:
    """A scene with 1..max_objects class objects (drawn from `classes`, names of CLASS_KINDS).

    Returns the image, the class objects as (class name, (x, y, w, h) box) and the unannotated
    homonym look-alikes as (homonym name, box). Boxes are tight around the drawn pixels; a later
    object may partly cover an earlier one, by at most a third of the smaller box.
    """
    if width is None:
        width = int(rng.integers(*SCENE_SIZE[0]))
    if height is None:
        height = int(rng.integers(*SCENE_SIZE[1]))
    image = background(rng, width, height)
    placed: list[tuple[int, int, int, int]] = []
    objects, lookalikes = [], []
    todo = [("class", str(rng.choice(classes))) for _ in range(int(rng.integers(1, max_objects + 1)))]
    if rng.random() < HOMONYM_PROBABILITY:
        todo.insert(0, ("homonym", int(rng.integers(len(HOMONYMS)))))
    for what, which in todo:
        kind = CLASS_KINDS[which] if what == "class" else HOMONYMS[which][2]
        for _ in range(8):
            size = int(rng.integers(OBJECT_SIZE[0], min(OBJECT_SIZE[1], width, height) + 1))
            x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
            if not overlaps((x, y, size, size), placed, 0.33):
                break
        else:
            continue
        box = draw_object(image, kind, x, y, size, float(rng.uniform(0, 2 * math.pi)), rng)
        if box is None:
            continue
        placed.append((x, y, size, size))
        if what == "class":
            objects.append((which, box))
        else:
            lookalikes.append((HOMONYMS[which][0], box))
    return image, objects, lookalikes


def object_photo(rng: np.random.Generator, kind: Kind, width: int, height: int,
                 fill: tuple[float, float] = (0.5, 0.9)) -> Image.Image:
    """A photo of one object of `kind` on the world's cluttered background, its square side a random
    `fill` fraction of the shorter image side, at a random place and rotation."""
    image = background(rng, width, height)
    size = max(4, int(min(width, height) * rng.uniform(*fill)))
    x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
    draw_object(image, kind, x, y, size, float(rng.uniform(0, 2 * math.pi)), rng)
    return image


def novel_kinds(count: int, seed: int) -> list[Kind]:
    """`count` looks that no class or look-alike of the world has, in a seeded order (at most 257)."""
    taken = set(CLASS_KINDS.values()) | {h[2] for h in HOMONYMS}
    free = [Kind(s, c, p) for s in SHAPES for c in COLOURS for p in PATTERNS if Kind(s, c, p) not in taken]
    if count > len(free):
        raise ValueError(f"the world has {len(free)} unused looks, {count} asked for")
    order = np.random.default_rng([seed, 8]).permutation(len(free))
    return [free[i] for i in order[:count]]
