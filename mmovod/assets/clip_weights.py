"""CLIP weights into the cache open_clip reads, so `--clip_model M` later loads them with no network.

Without a mirror, open_clip's own `download_pretrained` fetches them (from the Hugging Face Hub when
the tag has a Hub copy and `huggingface_hub` is installed, else from the tag's URL) into the cache it
reads back. With a mirror (`--base-url`), the file `clip/<hub repo>/<file>` or `clip/<url file name>`
is fetched from the mirror into the same place: the Hub cache's `snapshots/<revision>/<file>` (with
`refs/main` naming that revision), or `<cache>/<url file name>` for URL-hosted weights. Either way
the file must load into the model (mmovod's strict `load_clip`) before it counts as done.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip

from mmovod.assets.install import Status, check_present, fetch_checked, mirror_url
from mmovod.clip.factory import load_clip, resolve_model_name
from mmovod.clip.weights import WeightSource, hub_repo_folder, hub_revision, offline_reason
from mmovod.io.atomic import make_output_dir, write_bytes_atomic
from mmovod.io.downloads import DownloadError, ProgressFactory, RetryPolicy
from mmovod.io.errors import InputError

# the revision a mirrored file is filed under when the Hub cache has no refs/main yet; the Hub
# replaces refs/main with the real commit the next time the machine is online
MIRROR_REVISION = "0" * 40


@dataclass(frozen=True)
class ClipWeights:
    """The pretrained weights `tag` of the open_clip model `model_name` (`clip_model` as the user wrote it)."""

    clip_model: str
    model_name: str
    tag: str
    cfg: dict[str, Any]
    cache_dir: Path | None = None

    @property
    def name(self) -> str:
        return f"clip:{self.clip_model}:{self.tag}"

    @property
    def source(self) -> WeightSource:
        return WeightSource(self.model_name, self.tag, self.cfg)

    @property
    def hub_file(self) -> tuple[str, str] | None:
        """(repo id, file name) when open_clip takes these weights from the Hub, else None."""
        source = self.source
        return (source.hub_repo, source.hub_files[0]) if source.hub_repo else None

    @property
    def upstream(self) -> str:
        return self.source.upstream

    @property
    def mirror_path(self) -> str:
        """The file's relative name on a mirror."""
        hub = self.hub_file
        return f"clip/{hub[0]}/{hub[1]}" if hub else f"clip/{os.path.basename(self.cfg['url'])}"

    def target(self) -> Path:
        """Where open_clip looks for the file (for the Hub: the revision refs/main names)."""
        hub = self.hub_file
        if hub is None:
            return self.source.cache_folder(self.cache_dir) / os.path.basename(self.cfg["url"])
        repo = hub_repo_folder(hub[0], self.cache_dir)
        return repo / "snapshots" / (hub_revision(repo) or MIRROR_REVISION) / hub[1]


def resolve_clip_weights(clip_model: str, pretrained: str | None, cache_dir: str | os.PathLike | None = None
                         ) -> ClipWeights:
    """The weights `--clip MODEL [--pretrained TAG]` names (OpenAI names default to the `openai` tag)."""
    name, tag = resolve_model_name(clip_model, pretrained)
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tag is None or tag not in tags:
        given = f"--pretrained {tag!r} is not" if tag else "--pretrained TAG names"
        raise InputError(f"--clip {clip_model}: {given} a released tag of {name} (known: {', '.join(tags) or 'none'})")
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not (cfg.get("url") or cfg.get("hf_hub")):
        raise InputError(f"--clip {clip_model}: open_clip lists no download for its {tag!r} weights")
    return ClipWeights(clip_model, name, tag, dict(cfg), Path(cache_dir) if cache_dir else None)


def check_clip_file(path: str | os.PathLike, weights: ClipWeights, label: str | None = None) -> None:
    """Raise InputError (naming `label`) unless the file loads into the model with strict keys."""
    try:
        load_clip(weights.clip_model, pretrained=str(path), device="cpu")
    except InputError as exc:
        raise InputError(f"{label or path}: {str(exc).split(': ', 1)[-1]}") from None


def install_clip_weights(weights: ClipWeights, base_url: str | None, policy: RetryPolicy,
                         progress: ProgressFactory | None = None, force: bool = False) -> tuple[Status, Path]:
    """Put the weights where open_clip reads them; return ('fetched' or 'present', the file)."""
    present = weights.source.cached_file(weights.cache_dir)
    if present is not None and not force:
        check_present(present, lambda path: check_clip_file(path, weights))
        return "present", present
    target = weights.target()
    if base_url is None:
        return "fetched", _download_with_open_clip(weights)
    url = mirror_url(base_url, weights.mirror_path)
    fetch_checked(url, target, lambda path: check_clip_file(path, weights, label=url), policy, progress)
    ref = target.parents[2] / "refs" / "main"
    if weights.hub_file and not ref.is_file():
        make_output_dir(ref.parent, parents=True)
        write_bytes_atomic(ref, target.parent.name.encode())
    return "fetched", target


def _download_with_open_clip(weights: ClipWeights) -> Path:
    reason = offline_reason(weights.source)
    if reason:
        raise DownloadError(f"cannot download the {weights.tag} weights of {weights.model_name} ({reason}): run this "
                            f"on a machine with network and copy {weights.source.cache_folder(weights.cache_dir)} here, "
                            "or fetch from a mirror with --base-url")
    cache = str(weights.cache_dir) if weights.cache_dir else None
    try:
        path = Path(open_clip.pretrained.download_pretrained(weights.cfg, cache_dir=cache))
    except Exception as exc:  # open_clip and huggingface_hub raise many types for a failed download
        raise DownloadError(f"cannot download the {weights.tag} weights of {weights.model_name} from "
                            f"{weights.upstream} ({type(exc).__name__}: {first_words(str(exc))})") from None
    check_clip_file(path, weights)
    return path


def first_words(text: str, limit: int = 200) -> str:
    """The first line of `text`, cut at a word boundary to at most `limit` characters."""
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."
