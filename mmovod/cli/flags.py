"""The flag groups every tool shares, and their conversion to the library's typed settings.

One spelling per concept across tools: `--out-path` (an output file), `--out-dir` (an output
folder), `--workers` (worker processes), `--ann` (an LVIS/COCO annotation file), `--views` (views
per image or exemplar), `--aggregator` (a visual aggregator checkpoint). Where the datasets guide
spells a flag otherwise (`--out_path`, `--nw`, `--num-augs`, `--load-path`, ...), the guide's
spelling is kept and the consistent one added as an alias; `--num-augs` and `--load-path` are
accepted by every tool that takes views or an aggregator, and help shows the one spelling
(`hidden_alias`). Defaults appear in `--help` once, appended by `HelpFormatter`.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Callable, Sequence

from mmovod import __version__
from mmovod.clip.specs import VIEW_ORDERS, ClipSpec, ViewSpec
from mmovod.readers.image_roots import IMAGE_ROOTS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstring layout of the description and appends each flag's default once.

    A default of None or False is not shown (the help text says what unset means).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the tool's module docstring (with its example command), with --version."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s (mmovod {__version__})")
    return parser


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` accepting integers >= `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, found {value}")
        return value
    return parse


def non_negative_float(text: str) -> float:
    """An argparse `type` accepting finite floats >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, found {text}")
    return value


def command_line(prog: str, argv: Sequence[str]) -> str:
    """The command as a user would type it, recorded in output sidecars (`prog` may be two words: `mmovod x`)."""
    return shlex.join([*prog.split(" "), *argv])


TRUST_CHECKPOINT_HELP = ("trust the checkpoint file: unpickle every type it holds, which can run code from the "
                         "file (by default only tensors, plain values, numpy scalars and argparse.Namespace are read)")


# --- CLIP ---------------------------------------------------------------------------------------

TEXT_BATCH_HELP = "sentences per forward pass (unset: 256 on CUDA, 32 on CPU, where small batches stay in cache)"
IMAGE_BATCH_HELP = ("views per forward pass (unset: 256 on CUDA, 32 on CPU, where a larger batch is no faster and "
                    "its activations would outweigh the model)")

def add_clip_args(parser: argparse.ArgumentParser, default_model: str | None = "ViT-B/32",
                  batch_size: int | None = 256, batch_help: str = "items encoded per forward pass") -> None:
    """--clip_model/--clip-model, --pretrained, --device and --batch-size."""
    group = parser.add_argument_group("CLIP model")
    group.add_argument("--clip_model", "--clip-model", dest="clip_model", default=default_model,
                       help="CLIP architecture: world (the CLIP shipped with mmovod, works offline, no --pretrained; it knows "
                            "the demo's world, not real photos), OpenAI name (ViT-B/32, RN50, ...), open_clip name, "
                            "or model-config .json")
    group.add_argument("--pretrained", default=None,
                       help="weights: open_clip tag (openai is the default for OpenAI names), a local checkpoint "
                            "file (OpenAI's TorchScript .pt as the clip package downloads it, or an open_clip/OpenAI "
                            "state dict .pt/.bin/.safetensors), or 'none' for random weights")
    group.add_argument("--device", default=None,
                       help="torch device such as cpu, cuda or cuda:1; unset: cuda when available, else cpu")
    if batch_size is not False:
        group.add_argument("--batch-size", type=int_at_least(1), default=batch_size, help=batch_help)


def clip_spec_from_args(args: argparse.Namespace, device: str | None = None) -> ClipSpec:
    """The ClipSpec of the CLIP flags; `device` overrides --device (e.g. from --gpu)."""
    return ClipSpec(model=args.clip_model, pretrained=args.pretrained, device=device or args.device,
                    batch_size=getattr(args, "batch_size", None))


# --- image roots --------------------------------------------------------------------------------

_ROOT_HELP = {
    "lvis": "root of COCO images for records with dataset 'lvis' (holds train2017/, val2017/)",
    "imagenet21k": "root of ImageNet-21K for records with dataset 'imagenet21k' (holds imagenet21k_P/)",
    "visual_genome": "root of Visual Genome for records with dataset 'visual_genome' (holds VG_100K/, VG_100K_2/)",
}
_ROOT_FLAGS = {"lvis": "--lvis-img-dir", "imagenet21k": "--imagenet-img-dir", "visual_genome": "--visual-genome-img-dir"}


def add_image_root_args(parser: argparse.ArgumentParser) -> None:
    """--lvis-img-dir, --imagenet-img-dir and --visual-genome-img-dir (one shared group)."""
    group = parser.add_argument_group("image roots (a record's image is <root of its dataset>/<file_name>)")
    for dataset, default in IMAGE_ROOTS.items():
        flag = _ROOT_FLAGS[dataset]
        group.add_argument(flag, dest=flag[2:].replace("-", "_"), default=default, help=_ROOT_HELP[dataset])


def image_roots_from_args(args: argparse.Namespace) -> dict[str, Path]:
    """The dataset -> root folder mapping given by the image-root flags."""
    return {dataset: Path(getattr(args, _ROOT_FLAGS[dataset][2:].replace("-", "_"))) for dataset in IMAGE_ROOTS}


# --- exemplar views -----------------------------------------------------------------------------

def add_workers_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int | None,
                    help_text: str, *guide_spellings: str) -> None:
    """--workers (plus the guide's own spelling, e.g. --nw, as an alias), dest `workers`."""
    parser.add_argument(*guide_spellings, "--workers", dest="workers", type=int_at_least(0), default=default,
                        help=help_text)


VIEW_ORDER_HELP = ("how TTA views are made from their random crop box, flip and colour jitter: 'fast' applies them "
                   "straight at the model's input size as batched tensor operations (on the GPU when encoding on "
                   "CUDA; a JPEG is decoded at 1/2-1/8 scale when every view box still spans the input size); "
                   "'original' is the original script's order (crop resized to 4x the input size, jitter there "
                   "with PIL, then the model's resize), bit-identical to it and about 10x more CPU per view. They "
                   "differ by about 0.5 of 255 levels per pixel on average (docs/datasets.md: Exemplar views)")


def add_view_order_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--view-order {fast,original}."""
    parser.add_argument("--view-order", choices=VIEW_ORDERS, default=ViewSpec.order, help=VIEW_ORDER_HELP)


def hidden_alias(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, dest: str,
                 **kwargs: object) -> None:
    """Accept `flag` as another spelling of the flag of `dest`, left out of --help (no default of its own)."""
    parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_views_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int, help_text: str) -> None:
    """--views N (the guide's --num-augs too), dest `views`: how many views of each image or exemplar."""
    parser.add_argument("--views", type=int_at_least(1), default=default, metavar="N",
                        help=f"{help_text}; the guide's --num-augs")
    hidden_alias(parser, "--num-augs", "views", type=int_at_least(1))


def add_aggregator_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str,
                       required: bool = False) -> None:
    """--aggregator FILE (the guide's --load-path too), dest `aggregator`: a visual aggregator checkpoint."""
    target = parser.add_mutually_exclusive_group(required=True) if required else parser
    target.add_argument("--aggregator", metavar="FILE", default=None, help=f"{help_text}; the guide's --load-path")
    hidden_alias(target, "--load-path", "aggregator")


def add_exemplar_view_args(parser: argparse.ArgumentParser, workers: int) -> None:
    """--views/--num-augs, --seed, --view-order, --nw/--workers and --skip-bad: how exemplar views are made."""
    group = parser.add_argument_group("exemplar views")
    add_views_arg(group, 5, "views per exemplar")
    group.add_argument("--seed", type=int_at_least(0), default=0,
                       help="TTA seed; view v of exemplar e of class c is drawn from a generator seeded by "
                            "(seed, c, e, v), so views are identical for any --nw or --batch-size (embeddings up to "
                            "float rounding of batched matmuls)")
    add_view_order_arg(group)
    add_workers_arg(group, workers, "DataLoader worker processes that decode, crop and augment (0: in the main "
                                    "process)", "--nw")
    group.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable images (counted, listed in the log and the sidecar) instead of "
                            "stopping at the first one; a class keeps its other exemplars")


def view_spec_from_args(args: argparse.Namespace, *, context: float, tta: bool = True) -> ViewSpec:
    """The ViewSpec of the exemplar-view flags (the context is the tool's own)."""
    return ViewSpec(num_views=args.views, tta=tta, context=context, seed=args.seed, workers=args.workers,
                    skip_bad=args.skip_bad, order=args.view_order)
