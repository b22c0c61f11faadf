"""The download step: choose assets from the manifest (and CLIP weights), check every target, fetch, report."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from tqdm import tqdm

from mmovod.assets.install import FetchOptions, asset_target, asset_url, check_writable, install_asset, mirror_url
from mmovod.assets.manifest import DEFAULT_MANIFEST, Asset, load_manifest, select_assets
from mmovod.io.downloads import RetryPolicy
from mmovod.io.errors import InputError, interruption_keeps

if TYPE_CHECKING:
    from mmovod.assets.clip_weights import ClipWeights  # imports torch: loaded only when CLIP weights are asked for

CLIP_GROUP = "clip"


@dataclass(frozen=True)
class AssetRequest:
    """What to fetch: manifest assets (`only` names or groups; None: all, or none when `clip_models` are named)
    and the weights of `clip_models`."""

    dest: Path
    only: Sequence[str] | None = None
    base_url: str | None = None
    force: bool = False
    manifest: Path = DEFAULT_MANIFEST
    retries: int = 3
    retry_wait: float = 1.0
    timeout: float = 60.0
    clip_models: Sequence[str] = field(default_factory=list)
    pretrained: str | None = None
    clip_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.retry_wait < 0 or not self.timeout > 0:
            raise InputError("--retries and --retry-wait must be >= 0, --timeout > 0")


def _progress_bar(label: str, total: int | None, initial: int) -> tqdm:
    return tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


def _clip_weights(request: AssetRequest) -> list[ClipWeights]:
    if not request.clip_models:
        return []
    from mmovod.assets.clip_weights import resolve_clip_weights

    return [resolve_clip_weights(model, request.pretrained, request.clip_cache_dir) for model in request.clip_models]


def _listing(assets: list[Asset], weights: list[ClipWeights], options: FetchOptions) -> Iterator[str]:
    for asset in assets:
        size = f"{asset.size:,} B" if asset.size is not None else "size unknown"
        yield (f"{asset.name}  [{asset.group}, {size}]\n  from {asset_url(asset, options.base_url)}\n"
               f"  to   {asset_target(asset, options.dest)}\n  mirror path {asset.path}")
    for w in weights:
        source = w.upstream if options.base_url is None else mirror_url(options.base_url, w.mirror_path)
        yield f"{w.name}  [{CLIP_GROUP}]\n  from {source}\n  to   {w.target()}\n  mirror path {w.mirror_path}"


def download_assets(request: AssetRequest, list_only: bool = False) -> Iterator[str]:
    """Fetch, check and place the requested assets, yielding one status line per asset (with
    `list_only`, one description per asset and nothing fetched). Every destination is checked as
    writable before the first request."""
    only = request.only
    if only and CLIP_GROUP in only and not request.clip_models:
        raise InputError("--only clip: name the models with --clip MODEL")
    if only:
        assets = select_assets(load_manifest(request.manifest), [n for n in only if n != CLIP_GROUP])
    else:  # --clip alone fetches those weights only; nothing named fetches every manifest asset
        assets = [] if request.clip_models else select_assets(load_manifest(request.manifest), None)
    weights = _clip_weights(request) if (not only or CLIP_GROUP in only) else []
    options = FetchOptions(Path(request.dest), request.base_url,
                           RetryPolicy(request.retries, request.retry_wait, request.timeout), request.force)
    if list_only:
        yield from _listing(assets, weights, options)
        return
    if not options.dest.is_dir():
        raise InputError(f"--dest {options.dest}: not a folder")
    for target in [asset_target(a, options.dest) for a in assets] + [w.target() for w in weights]:
        check_writable(target)
    placed: list[Path] = []  # fetched by this run: an interrupted run names them
    with interruption_keeps(lambda: _placed_kept(placed), "run the same command again to fetch the rest"):
        for asset in assets:
            status = install_asset(asset, options, _progress_bar)
            if status == "fetched":
                placed.append(asset_target(asset, options.dest))
            yield f"{status:8s} {asset.name} -> {asset_target(asset, options.dest)}"
        if weights:
            from mmovod.assets.clip_weights import install_clip_weights

        for w in weights:
            status, path = install_clip_weights(w, options.base_url, options.policy, _progress_bar, options.force)
            if status == "fetched":
                placed.append(path)
            yield f"{status:8s} {w.name} -> {path} (on a mirror: {w.mirror_path})"


def _placed_kept(placed: list[Path]) -> str | None:
    """What an interrupted run keeps of the files it fetched: they are checked and in place."""
    return f"fetched and in place: {', '.join(map(str, placed))}" if placed else None
