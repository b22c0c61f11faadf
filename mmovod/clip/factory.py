"""The one CLIP factory: model, tokenizer and image preprocessing through open_clip.

Accepted model names:
  - `world`: the demo world's CLIP shipped with mmovod (`mmovod.clip.shipped`), no other flag needed;
  - the OpenAI spellings the original scripts use (`ViT-B/32`, `ViT-B/16`, `ViT-L/14`, `RN50`, ...),
    which default to the OpenAI weights;
  - any open_clip model name (`ViT-B-32`, `ViT-H-14`, ...) with a `pretrained` tag or file;
  - a path to an open_clip model-config JSON (custom or tiny architectures; tests use this).
`pretrained` is an open_clip tag (`openai`, `laion2b_s34b_b79k`, ...), a local checkpoint file, or
`none` for random weights. Local checkpoint files may be in any of these formats:
  - OpenAI's TorchScript archive (`ViT-B-32.pt` as the original `clip` package downloads it into
    `~/.cache/clip/`): its state dict is read and, being OpenAI weights, run with QuickGELU;
  - an OpenAI or open_clip state dict, bare or under a `state_dict` key (`torch.save`), with or
    without a `module.` prefix, or a `.safetensors` file.
Weights trained with QuickGELU run with it: OpenAI weights (an OpenAI spelling, or a TorchScript
archive) and every open_clip tag whose pretrained config says so (`ViT-B-32` + `openai`,
`metaclip_*`, ...). An open_clip name with a local OpenAI state dict needs the `-quickgelu` variant of
the name.

Other families open_clip lists load through the same path, each with its own towers, image
normalisation (from its pretrained config) and tokenizer: SigLIP (no causal mask, last-token
pooling, a logit bias), EVA (a timm image tower), CoCa (attentional pooling; its captioning decoder
is not used). A model whose parts need a package that is not installed (a Hugging Face text tower or
tokenizer needs `transformers`, a timm image tower needs `timm`) is refused with one line naming it.
The embedding width of an architecture is read from its config alone (`clip_embed_dim`).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pickle
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import open_clip
import torch
from safetensors import SafetensorError

from mmovod.clip.identity import NO_WEIGHTS, OPENAI_NAMES, file_digest
from mmovod.clip.shipped import WORLD, expand_shipped, world_clip_paths
from mmovod.clip.weights import no_hub_requests, offline_reason, weight_source
from mmovod.io.checkpoints import check_finite_weights, unpickling_error
from mmovod.io.errors import InputError
from mmovod.io.json_files import load_json
from mmovod.io.launcher import command

log = logging.getLogger(__name__)

TOWERS = ("both", "text", "image")
MODEL_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
PLAIN_STATE_DICT_HINT = "re-save its weights as a plain state dict of tensors, or as .safetensors"
# keys of OpenAI's TorchScript archives that are attributes, not weights
_JIT_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass
class ClipBundle:
    """A loaded CLIP model with what belongs to it."""

    model: torch.nn.Module
    tokenizer: Callable[..., torch.Tensor] | None  # None when only the image tower was loaded
    preprocess: Callable[[Any], torch.Tensor]
    device: torch.device
    model_name: str
    pretrained: str | None
    embed_dim: int
    image_size: int

    def autocast(self) -> ContextManager:
        """fp16 autocast on CUDA, a no-op (fp32) on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def describe(self) -> dict[str, Any]:
        """What identifies this model in a classifier's sidecar."""
        return {"clip_model": self.model_name, "pretrained": self.pretrained, "embed_dim": self.embed_dim}


def resolve_device(device: str | None = None) -> torch.device:
    """`device` if given, else CUDA when available, else CPU."""
    if device:
        try:
            resolved = torch.device(device)
        except RuntimeError:
            raise InputError(f"--device {device!r} is not a torch device (try cpu, cuda or cuda:1)") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        return resolved
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_from_flags(device: str | None, gpu: int | None) -> str | None:
    """--device wins; --gpu N means cuda:N when CUDA is present and the CPU otherwise."""
    if device or gpu is None:
        return device
    if not torch.cuda.is_available():
        log.debug("--gpu %d: no CUDA device on this machine, running on the CPU", gpu)
        return "cpu"
    if not 0 <= gpu < torch.cuda.device_count():
        raise InputError(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{gpu}"


def resolve_model_name(clip_model: str, pretrained: str | None) -> tuple[str, str | None]:
    """Map a user-facing model spelling to (open_clip name, pretrained tag/file or None)."""
    clip_model, pretrained = expand_shipped(clip_model, pretrained)
    if clip_model.endswith(".json"):
        config = Path(clip_model)
        if not config.is_file():
            raise InputError(f"{config}: model config not found")
        _check_model_config(config)
        open_clip.add_model_config(config)
        name = config.stem
    elif clip_model in OPENAI_NAMES:
        name = OPENAI_NAMES[clip_model]
        pretrained = pretrained or "openai"
    elif clip_model in open_clip.list_models():
        name = clip_model
    else:
        raise InputError(
            f"unknown --clip_model {clip_model!r}: use {WORLD} (the shipped CLIP), an OpenAI name "
            f"({', '.join(OPENAI_NAMES)}), an open_clip name (open_clip.list_models()) or a model-config .json file"
        )
    if pretrained is not None and pretrained.lower() in NO_WEIGHTS:
        pretrained = None
    return name, pretrained


def model_config(clip_model: str) -> tuple[str, dict[str, Any]]:
    """The open_clip name and architecture config of `clip_model` (no weights are loaded)."""
    name, _ = resolve_model_name(clip_model, None)
    config = open_clip.get_model_config(name)
    if not config or "embed_dim" not in config:
        raise InputError(f"--clip_model {clip_model}: no model config with an embed_dim")
    return name, config


def clip_embed_dim(clip_model: str) -> int:
    """The embedding width of a CLIP architecture (the length of its image and text embeddings), from its config."""
    return int(model_config(clip_model)[1]["embed_dim"])


def missing_packages(name: str, config: dict[str, Any], tower: str) -> list[str]:
    """What this environment lacks to load `tower` of the open_clip model `name` with `config`, one phrase each."""
    text, vision = config.get("text_cfg") or {}, config.get("vision_cfg") or {}
    needs = []
    if vision.get("timm_model_name"):
        needs.append(("timm", f"its image tower (timm's {vision['timm_model_name']})"))
    if text.get("hf_model_name"):
        needs.append(("transformers", f"its text tower (Hugging Face's {text['hf_model_name']})"))
    # open_clip gives a Hugging Face tokenizer to a config that names one, and SigLIP's to any name with 'siglip'
    tokenizer = text.get("hf_tokenizer_name") or ("SigLIP's" if "siglip" in name.lower() else None)
    if tokenizer and tower != "image":
        needs.append(("transformers", f"its tokenizer ({tokenizer}; its image tower alone loads without it)"))
    return [f"{what} needs the {package} package, which is not installed (pip install {package})"
            for package, what in needs if importlib.util.find_spec(package) is None]


def _check_model_config(path: Path) -> None:
    """InputError unless `path` is a JSON object with the keys open_clip needs (it skips others silently)."""
    doc = load_json(path, "model config")
    missing = [k for k in MODEL_CONFIG_KEYS if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise InputError(f"{path}: not an open_clip model config (no {', '.join(repr(k) for k in missing)})")


def _check_pretrained(name: str, pretrained: str | None) -> None:
    if pretrained is None or Path(pretrained).is_file():
        return
    if pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise InputError(f"{pretrained}: checkpoint file not found")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        raise InputError(
            f"--pretrained {pretrained!r} is neither a file nor a known tag for {name} (known: {', '.join(tags) or 'none'})"
        )


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a TorchScript archive (OpenAI's released `.pt` files), False for torch.save files."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def _weights_help(name: str, tag: str) -> str:
    """Where to get the `tag` weights of `name` by hand, for the no-network error message."""
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    sources = []
    if cfg.get("hf_hub"):
        sources.append(f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}")
    if cfg.get("url"):
        sources.append(cfg["url"])
    where = " or ".join(sources) or "the open_clip model zoo"
    return f"download them on a machine with network access ({where}) and pass the file with --pretrained /path/to/file"


def weights_are_cached(clip_model: str, name: str, tag: str) -> bool:
    """True when the `tag` weights are in the local cache; False when they are not but can be downloaded.

    Raises InputError (one line, before any Hub request) when they are not here and the machine is offline.
    """
    source = weight_source(name, tag)
    if source is None:
        return False
    if source.cached_file() is not None:
        return True
    reason = offline_reason(source)
    if reason:
        raise InputError(f"the {tag} weights of {clip_model} are not in {source.cache_folder()} and cannot be "
                         f"downloaded ({reason}): run `{command('download_assets', '--clip ' + clip_model)}"
                         f"{'' if clip_model in OPENAI_NAMES and tag == 'openai' else ' --pretrained ' + tag}` on a "
                         f"machine with network and copy that folder here, pass a weights file with --pretrained FILE, "
                         f"or use the shipped CLIP with --clip_model {WORLD}")
    return False


def config_hint(path: str) -> str:
    """Which model config a weights file needs, for the message when it does not fit the model named."""
    if file_digest(path) == file_digest(world_clip_paths()[1]):
        return f"it is the shipped world CLIP: pass --clip_model {WORLD} (without --pretrained)"
    beside = Path(path).with_suffix(".json")
    if beside.is_file():
        return f"pass its model config with --clip_model {beside}"
    return "pass the model it was trained as with --clip_model (an open_clip name or its model-config .json)"


def _load_local_checkpoint(model: torch.nn.Module, path: str, clip_model: str) -> None:
    """Load a local checkpoint file into `model` (OpenAI TorchScript or any open_clip-readable state dict).

    A pickled checkpoint is read with `weights_only=True` (open_clip's default): a file holding other
    types than tensors and plain values is refused, never unpickled.
    """
    if Path(path).stat().st_size == 0:
        raise InputError(f"{path}: CLIP checkpoint is empty (0 bytes)")
    try:
        if is_torchscript_archive(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                state_dict = torch.jit.load(path, map_location="cpu").state_dict()
            non_persistent = {n for n, _ in model.named_buffers()} - set(model.state_dict())
            for key in (*_JIT_ONLY_KEYS, *non_persistent):
                state_dict.pop(key, None)
            model.load_state_dict(state_dict)
        else:
            open_clip.load_checkpoint(model, path)
    except pickle.UnpicklingError as exc:
        raise unpickling_error(path, "CLIP checkpoint", exc, hint=PLAIN_STATE_DICT_HINT) from None
    except (AttributeError, TypeError, StopIteration):  # open_clip reads the object as a non-empty dict of tensors
        raise InputError(f"{path}: not a CLIP state dict (expected a dict of tensors, or one under 'state_dict')") from None
    except (RuntimeError, OSError, ValueError, EOFError, KeyError, AssertionError, SafetensorError) as exc:
        # open_clip asserts on mismatched positional-embedding widths; load_state_dict raises "Error(s) in loading"
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        if isinstance(exc, AssertionError) or lines[0].startswith("Error(s) in loading"):
            detail = lines[1] if len(lines) > 1 and not isinstance(exc, AssertionError) else lines[0]
            raise InputError(f"{path}: not a checkpoint of {clip_model} ({detail[:200]}); {config_hint(path)}") from None
        if _other_shapes(model, path):
            raise InputError(f"{path}: not weights of {clip_model} (its tensors have other shapes); "
                             f"{config_hint(path)}") from None
        raise InputError(f"{path}: not a readable CLIP checkpoint ({lines[0][:200]})") from None


def _other_shapes(model: torch.nn.Module, path: str) -> bool:
    """True when `path` reads as a state dict whose tensors shared with `model` differ in shape (another architecture)."""
    try:
        state = open_clip.factory.load_state_dict(path)
    except Exception:  # noqa: BLE001 - only asked after loading failed: unreadable means "not another model"
        return False
    own = model.state_dict()
    return any(k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape) for k, v in state.items())


class _OpenClipChatter(logging.Filter):
    """Drops open_clip's INFO records (it logs its loading steps on the root logger) and, when no released
    weights are wanted (a local checkpoint is loaded next, or a random model is the point), its
    'initialized randomly' warning."""

    def __init__(self, no_weights_wanted: bool):
        super().__init__()
        self.no_weights_wanted = no_weights_wanted

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}open_clip{os.sep}" not in record.pathname:
            return True
        if record.levelno < logging.WARNING:
            return False
        return not (self.no_weights_wanted and "No pretrained weights loaded" in record.getMessage())


@contextlib.contextmanager
def quiet_open_clip(no_weights_wanted: bool = False) -> Iterator[None]:
    """Inside the block, open_clip's loading chatter is dropped (see `_OpenClipChatter`)."""
    root = logging.getLogger()
    filt = _OpenClipChatter(no_weights_wanted)
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def _drop_tower(model: torch.nn.Module, tower: str) -> None:
    """Free the tower that is not wanted (`tower` = "text" keeps text only, "image" keeps image only)."""
    if tower == "text":
        model.visual = None
    elif tower == "image":
        for attr in ("text", "transformer", "token_embedding", "ln_final", "text_decoder"):
            if isinstance(getattr(model, attr, None), torch.nn.Module):
                setattr(model, attr, None)


def load_clip(
    clip_model: str,
    pretrained: str | None = None,
    device: str | None = None,
    *,
    tower: str = "both",
) -> ClipBundle:
    """Load a CLIP model in eval mode on `device` (CUDA if available by default).

    `tower` = "text" or "image" frees the other tower after loading (e.g. the ViT-L/14 image tower
    is not needed to embed sentences); the bundle's `image_size`, `embed_dim` and `preprocess` stay
    valid. Raises InputError (one line) for an unknown model, a missing or mismatched checkpoint, or
    weights that cannot be downloaded, saying where to get them and how to pass them offline. Released weights
    already in the local cache load with no Hub request; offline without them, the error comes before any.
    """
    if tower not in TOWERS:
        raise ValueError(f"tower must be one of {TOWERS}, not {tower!r}")
    name, pretrained = resolve_model_name(clip_model, pretrained)
    config = open_clip.get_model_config(name) or {}
    missing = missing_packages(name, config, tower)
    if missing:
        raise InputError(f"cannot load {clip_model}: {'; '.join(missing)}")
    _check_pretrained(name, pretrained)
    torch_device = resolve_device(device)
    start = time.monotonic()
    log.info("loading CLIP %s%s on %s ...", clip_model, "" if clip_model == WORLD or pretrained is None
             else f" ({Path(pretrained).name})", torch_device)
    local_file = pretrained is not None and Path(pretrained).is_file()
    try:
        if local_file:
            quick_gelu = clip_model in OPENAI_NAMES or is_torchscript_archive(pretrained)
            with quiet_open_clip(no_weights_wanted=True):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=None, force_quick_gelu=quick_gelu)
            _load_local_checkpoint(model, pretrained, clip_model)
            check_finite_weights(model.state_dict(), pretrained, "CLIP checkpoint")
        else:
            # open_clip only warns when a tag trained with QuickGELU (openai, metaclip, ...) is loaded
            # into a plain-GELU config: embeddings would silently differ from the released model
            quick_gelu = bool(pretrained and (open_clip.get_pretrained_cfg(name, pretrained) or {}).get("quick_gelu"))
            cached = pretrained is not None and weights_are_cached(clip_model, name, pretrained)
            with quiet_open_clip(), (no_hub_requests() if cached else contextlib.nullcontext()):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    name, pretrained=pretrained, force_quick_gelu=quick_gelu)
    except (RuntimeError, OSError, ValueError) as exc:
        if pretrained and not local_file:
            raise InputError(f"cannot get the {pretrained} weights of {name} ({type(exc).__name__}): "
                             + _weights_help(name, pretrained)) from None
        raise InputError(f"cannot load {name} from {pretrained or 'random init'}: {str(exc).splitlines()[0]}") from None
    model.eval()
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    embed_dim = int(config["embed_dim"])  # CustomTextCLIP and CoCa keep their projection inside the text tower
    _drop_tower(model, tower)  # before moving, so the unwanted tower never reaches the GPU
    model.to(torch_device)
    tokenizer = None
    if tower != "image":  # building the BPE tokenizer costs about 0.2 s; the image tower never needs it
        with quiet_open_clip():
            try:
                tokenizer = open_clip.get_tokenizer(name)
            except (OSError, ValueError, ImportError) as exc:  # a Hugging Face tokenizer whose files are not here
                raise InputError(f"cannot load the tokenizer of {clip_model}: {str(exc).splitlines()[0][:200]}") from None
    log.debug("CLIP %s loaded in %.1f s", clip_model, time.monotonic() - start)
    return ClipBundle(
        model=model,
        tokenizer=tokenizer,
        preprocess=preprocess,
        device=torch_device,
        model_name=clip_model,
        pretrained=None if clip_model == WORLD else pretrained,  # `world` names its own weights in any install
        embed_dim=embed_dim,
        image_size=image_size,
    )
