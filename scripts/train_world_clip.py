"""Train the demo world's small CLIP (the weights shipped as mmovod/data/world_clip.pt).

Settings (every one is a flag; the defaults made the shipped file):
  model      mmovod/data/world_clip.json: open_clip CLIP, vision 48 px / patch 8 / 3 layers / width 96,
             text 2 layers / width 64 (standard 49,408-token tokenizer), embedding 128
  data       fresh crops every step: scenes of the world (mmovod.demo.world, clutter and look-alikes)
             rendered from seed (--seed, step), each object cut square with a random context of 0-60%,
             then a random 80-100% sub-crop, a flip and a mild colour jitter half of the time;
             captions drawn from mmovod.demo.world_text.caption_pool (names, synonyms, looks,
             description sentences)
  loss       CLIP's symmetric cross-entropy over the batch, where every pair of the same class is a
             positive (targets spread evenly over them); learned temperature
  optimiser  AdamW, lr 2e-3, weight decay 0.1, 100 warm-up steps then cosine decay; batch 128
  threads    --threads torch threads for the model (1 by default, so that the result does not
             depend on the machine's core count); --workers processes render the crops

The same seed and thread count give the same weights on the same machine and torch build.
Example:
  python scripts/train_world_clip.py --steps 1800 --out mmovod/data/world_clip.pt --log /tmp/world_clip.log
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from mmovod.readers.exemplar_records import exemplar_crop_box
from mmovod.clip.text_encoding import causal_text_tower
from mmovod.clip.factory import resolve_model_name
from mmovod.demo.dataset import demo_categories
from mmovod.demo.world import HOMONYMS, render_scene
from mmovod.demo.world_text import caption_pool, world_descriptions
from mmovod.classifiers.text_inputs import description_key

CONFIG = Path(__file__).parents[1] / "mmovod" / "data" / "world_clip.json"
MEAN = np.array(open_clip.OPENAI_DATASET_MEAN, dtype=np.float32)
STD = np.array(open_clip.OPENAI_DATASET_STD, dtype=np.float32)


def augment(crop: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random 80-100% sub-crop, a flip and a mild colour jitter, each half of the time."""
    if rng.random() < 0.5:
        w, h = crop.size
        s = math.sqrt(rng.uniform(0.8, 1.0))
        cw, ch = max(1, int(w * s)), max(1, int(h * s))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = crop.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.8, 1.2))
        crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.8, 1.2))
        crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.8, 1.2))
        hsv = np.asarray(crop.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(-13, 14))) % 256
        crop = Image.fromarray(hsv, "HSV").convert("RGB")
    return crop


def to_pixels(crop: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to `size` (bicubic), centre-crop, normalise: `(3, size, size)` float32."""
    w, h = crop.size
    scale = size / min(w, h)
    crop = crop.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left, top = (crop.width - size) // 2, (crop.height - size) // 2
    crop = crop.crop((left, top, left + size, top + size))
    return ((np.asarray(crop, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def object_crops(rng: np.random.Generator, names: list[str], n: int, size: int, train: bool,
                 context: tuple[float, float] = (0.0, 0.6)) -> tuple[np.ndarray, np.ndarray]:
    """`n` object crops from fresh scenes: pixels `(n, 3, size, size)` and labels `(n,)` (class index in
    `names`, then len(names) + homonym index for the look-alikes; look-alikes only when `train`)."""
    index = {name: i for i, name in enumerate(names)}
    homonyms = {h[0]: len(names) + i for i, h in enumerate(HOMONYMS)}
    pixels, labels = [], []
    while len(labels) < n:
        image, objects, lookalikes = render_scene(rng, names)
        found = [(index[c], b) for c, b in objects] + ([(homonyms[c], b) for c, b in lookalikes] if train else [])
        for label, (x, y, w, h) in found:
            box = exemplar_crop_box({"dataset": "lvis", "bbox": [x, y, w, h]}, image.width, image.height,
                                    float(rng.uniform(*context)))
            crop = image.crop(box)
            pixels.append(to_pixels(augment(crop, rng) if train else crop, size))
            labels.append(label)
    return np.stack(pixels[:n]), np.array(labels[:n])


class Batches(torch.utils.data.Dataset):
    """Batch `step` of the run: crops, labels and captions drawn from the seed (`seed`, 2, step) alone,
    so a data-loader worker renders the next batches while the model trains, with the same result."""

    def __init__(self, names: list[str], pool: list[list[str]], batch: int, size: int, seed: int, steps: int):
        self.names, self.pool, self.batch, self.size, self.seed, self.steps = names, pool, batch, size, seed, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        rng = np.random.default_rng([self.seed, 2, step])
        pixels, labels = object_crops(rng, self.names, self.batch, self.size, train=True)
        captions = [self.pool[c][int(rng.integers(len(self.pool[c])))] for c in labels]
        return torch.from_numpy(pixels), torch.from_numpy(labels), captions


def class_text_features(model: torch.nn.Module, tokenizer, sentences: list[list[str]]) -> torch.Tensor:
    """Per class, the normalised mean of its sentences' normalised embeddings `(C, D)`."""
    rows = []
    for group in sentences:
        emb = F.normalize(model.encode_text(tokenizer(group)), dim=-1).mean(0)
        rows.append(F.normalize(emb, dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def zero_shot(model: torch.nn.Module, tokenizer, cats: list[dict], pixels: torch.Tensor, labels: torch.Tensor
              ) -> dict[str, float]:
    """Top-1 on held-out crops of class-name ("a {name}") and description classifiers."""
    model.eval()
    image = F.normalize(model.encode_image(pixels), dim=-1)
    descriptions = world_descriptions(cats)
    out = {}
    for kind, sentences in (("name", [[f"a {c['name']}"] for c in cats]),
                            ("descriptions", [descriptions[description_key(c)] for c in cats])):
        text = class_text_features(model, tokenizer, sentences)
        out[kind] = float(((image @ text.T).argmax(1) == labels).float().mean())
    model.train()
    return out


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Save the state dict in float16 (a plain state dict of tensors); returns its SHA-256 over tensors."""
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
             for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state_digest(state)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    name, _ = resolve_model_name(str(args.config), None)
    model = open_clip.create_model(name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(name)
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    cats = demo_categories()
    names = [c["name"] for c in cats]
    pool = caption_pool(cats)
    held_rng = np.random.default_rng([args.seed, 1])
    held_pixels, held_labels = object_crops(held_rng, names, args.eval_crops, size, train=False)
    held_pixels, held_labels = torch.from_numpy(held_pixels), torch.from_numpy(held_labels)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    log = open(args.log, "a") if args.log else sys.stdout
    print(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}}), file=log, flush=True)
    start_wall, start_cpu = time.time(), time.process_time()
    tower = causal_text_tower(model)
    batches = torch.utils.data.DataLoader(Batches(names, pool, args.batch, size, args.seed, args.steps),
                                          batch_size=None, num_workers=args.workers, prefetch_factor=2 if args.workers else None)
    for step, (pixels, labels, captions) in enumerate(batches):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimiser.param_groups:
            group["lr"] = lr
        image = F.normalize(model.encode_image(pixels), dim=-1)
        tokens = tokenizer(captions)
        text = F.normalize(tower.encode_prefix(tokens[:, :int(tower.needed_lengths(tokens).max())]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * image @ text.T
        same = (labels[:, None] == labels[None, :]).float()
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-targets * F.log_softmax(logits.T, 1), 1).mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc = zero_shot(model, tokenizer, cats, held_pixels, held_labels)
            digest = save_weights(model, args.out)
            print(json.dumps({"step": step + 1, "loss": round(loss.item(), 4), "lr": lr,
                              "zero_shot_top1": acc, "wall_s": round(time.time() - start_wall, 1),
                              "cpu_s": round(time.process_time() - start_cpu, 1), "sha256": digest}),
                  file=log, flush=True)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="open_clip model config (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (float16 state dict)")
    parser.add_argument("--steps", type=int, default=1800, help="optimiser steps (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=128, help="crops per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=100, help="linear warm-up steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and every crop (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="data-loader processes rendering crops "
                        "(default: %(default)s; the result does not depend on it)")
    parser.add_argument("--eval-every", type=int, default=150, help="steps between zero-shot checks and saves "
                        "(default: %(default)s)")
    parser.add_argument("--eval-crops", type=int, default=600, help="held-out crops of the check (default: %(default)s)")
    parser.add_argument("--log", help="append JSON lines here instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    train(get_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
