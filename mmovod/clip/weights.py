"""Where open_clip gets released CLIP weights, whether they are already on this machine, and whether it is offline.

open_clip takes a tag's weights from the Hugging Face Hub when the tag has a Hub copy and
`huggingface_hub` is installed (the `.safetensors` form first), else from the tag's URL into
`~/.cache/clip` (where OpenAI's `clip` package keeps `ViT-B-32.pt` too). Every check here reads the
file system only, except `hub_unreachable`, which opens one TCP connection with a short timeout.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import open_clip

from mmovod.io.errors import InputError

URL_CACHE = Path("~/.cache/clip")  # open_clip's download_pretrained_from_url default
PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class WeightSource:
    """The released `tag` weights of the open_clip model `name`: the Hub files open_clip tries, in order, or a URL."""

    name: str
    tag: str
    cfg: dict[str, Any]

    @property
    def hub_repo(self) -> str | None:
        """The Hub repository open_clip downloads from, or None when it uses the URL."""
        if not (self.cfg.get("hf_hub") and open_clip.pretrained.has_hf_hub()):
            return None
        return os.path.split(self.cfg["hf_hub"])[0]

    @property
    def hub_files(self) -> tuple[str, ...]:
        """File names open_clip tries in the Hub repository, in its order."""
        filename = os.path.split(self.cfg.get("hf_hub", ""))[1] or open_clip.constants.HF_WEIGHTS_NAME
        safe = (tuple(open_clip.pretrained._get_safe_alternatives(filename))
                if getattr(open_clip.pretrained, "_has_safetensors", False) else ())
        return (*safe, filename)

    @property
    def upstream(self) -> str:
        """The URL the weights come from."""
        if self.hub_repo:
            from huggingface_hub import constants

            return f"{constants.ENDPOINT}/{self.hub_repo}/resolve/main/{self.hub_files[0]}"
        return self.cfg["url"]

    def cache_folder(self, cache_dir: str | os.PathLike | None = None) -> Path:
        """The folder open_clip reads these weights from (for the Hub: the repository's cache folder)."""
        if self.hub_repo:
            return hub_repo_folder(self.hub_repo, cache_dir)
        return Path(cache_dir or URL_CACHE).expanduser()

    def cached_file(self, cache_dir: str | os.PathLike | None = None) -> Path | None:
        """The weights file open_clip would read without downloading, if it is here (file system only)."""
        if self.hub_repo:
            from huggingface_hub import try_to_load_from_cache

            hub_revision(hub_repo_folder(self.hub_repo, cache_dir))  # a damaged refs/main is named, not a traceback
            for filename in self.hub_files:
                found = try_to_load_from_cache(self.hub_repo, filename, cache_dir=cache_dir)
                if isinstance(found, str):
                    return Path(found)
            return None
        path = self.cache_folder(cache_dir) / os.path.basename(self.cfg["url"])
        return path if path.is_file() else None


def weight_source(name: str, tag: str) -> WeightSource | None:
    """The released weights `tag` of open_clip model `name`, or None when open_clip lists no download for them."""
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    return WeightSource(name, tag, dict(cfg)) if cfg.get("url") or cfg.get("hf_hub") else None


def hub_repo_folder(repo_id: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face cache folder of a model repository (`models--org--name`)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def hub_revision(repo_folder: Path) -> str | None:
    """The commit `refs/main` of a Hub cache folder names (None: no refs/main yet); InputError when it holds
    anything but a commit hash (the revision becomes a folder name, so it must not lead out of the cache)."""
    ref = repo_folder / "refs" / "main"
    if not ref.is_file():
        return None
    match = re.fullmatch(rb"\s*([0-9a-f]{40})\s*", ref.read_bytes())
    if match is None:
        raise InputError(f"{ref}: not a commit hash (a damaged Hugging Face cache file); remove it")
    return match.group(1).decode()


def hub_offline() -> bool:
    """True when the Hugging Face Hub is switched off (HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_unreachable(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when `url`'s host cannot be connected to within `timeout` seconds (DNS included)."""
    parts = urlsplit(url)
    address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    done, reached = threading.Event(), threading.Event()

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            reached.set()
        except OSError:
            pass
        finally:
            done.set()

    threading.Thread(target=connect, daemon=True).start()  # getaddrinfo has no timeout of its own
    done.wait(timeout + 0.2)
    return not reached.is_set()


@contextlib.contextmanager
def no_hub_requests() -> Iterator[None]:
    """Within: the Hub client answers from its cache only (for weights known to be cached: no request at all)."""
    from huggingface_hub import constants

    saved, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def offline_reason(source: WeightSource) -> str | None:
    """Why the weights cannot be downloaded now ('HF_HUB_OFFLINE is set', 'no network: ...'), or None."""
    if source.hub_repo and hub_offline():
        return "HF_HUB_OFFLINE is set"
    if hub_unreachable(source.upstream):
        return f"no network: {urlsplit(source.upstream).hostname} cannot be reached"
    return None


@dataclass(frozen=True)
class ReleasedWeights:
    """One (model, tag) pair open_clip can download, and its file if it is already here."""

    name: str
    tag: str
    cached: Path | None


def released_weights(model: str | None = None, cache_dir: str | os.PathLike | None = None) -> list[ReleasedWeights]:
    """Every (model, tag) open_clip lists (only `model`'s with `model`), each with its cached file or None."""
    found = []
    for name, tag in open_clip.list_pretrained():
        source = weight_source(name, tag) if model in (None, name) else None
        if source is not None:
            found.append(ReleasedWeights(name, tag, source.cached_file(cache_dir)))
    return found
