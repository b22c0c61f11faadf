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
from mmovod.io.atomic import make_output_dir, write_bytes_atomic
from mmovod.io.downloads import DownloadError, ProgressFactory, RetryPolicy
from mmovod.io.errors import InputError

# the revision a mirrored file is filed under when the Hub cache has no refs/main yet; the Hub
# replaces refs/main with the real commit the next time the machine is online
MIRROR_REVISION = "0" * 40
URL_CACHE = Path("~/.cache/clip")  # open_clip's download_pretrained_from_url default


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
    def hub_file(self) -> tuple[str, str] | None:
        """(repo id, file name) when open_clip takes these weights from the Hub, else None."""
        # open_clip's download_pretrained prefers the Hub when the tag names a Hub copy and
        # huggingface_hub is installed; the file it tries first is the safetensors form
        if not (self.cfg.get("hf_hub") and open_clip.pretrained.has_hf_hub()):
            return None
        repo_id, filename = os.path.split(self.cfg["hf_hub"])  # 'org/repo/' -> the default file name
        filename = filename or open_clip.constants.HF_WEIGHTS_NAME
        if getattr(open_clip.pretrained, "_has_safetensors", False):
            filename = next(iter(open_clip.pretrained._get_safe_alternatives(filename)), filename)
        return repo_id, filename

    @property
    def upstream(self) -> str:
        hub = self.hub_file
        return f"https://huggingface.co/{hub[0]}/resolve/main/{hub[1]}" if hub else self.cfg["url"]

    @property
    def mirror_path(self) -> str:
        """The file's relative name on a mirror."""
        hub = self.hub_file
        return f"clip/{hub[0]}/{hub[1]}" if hub else f"clip/{os.path.basename(self.cfg['url'])}"

    def target(self) -> Path:
        """Where open_clip looks for the file (for the Hub: the revision refs/main names)."""
        hub = self.hub_file
        if hub is None:
            return Path(self.cache_dir or URL_CACHE.expanduser()) / os.path.basename(self.cfg["url"])
        repo = self._hub_repo_folder(hub[0])
        ref = repo / "refs" / "main"
        revision = ref.read_text().strip() if ref.is_file() else MIRROR_REVISION
        return repo / "snapshots" / revision / hub[1]

    def _hub_repo_folder(self, repo_id: str) -> Path:
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        cache = self.cache_dir or Path(constants.HF_HUB_CACHE)
        return Path(cache) / repo_folder_name(repo_id=repo_id, repo_type="model")


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
    target = weights.target()
    if target.is_file() and not force:
        check_present(target, lambda path: check_clip_file(path, weights))
        return "present", target
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
    cache = str(weights.cache_dir) if weights.cache_dir else None
    try:
        path = Path(open_clip.pretrained.download_pretrained(weights.cfg, cache_dir=cache))
    except Exception as exc:  # open_clip and huggingface_hub raise many types for a failed download
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise DownloadError(f"cannot download the {weights.tag} weights of {weights.model_name} from "
                            f"{weights.upstream} ({type(exc).__name__}: {first})") from None
    check_clip_file(path, weights)
    return path
