"""Describe a list of classes with an LLM: finished classes are cached as they come (`cache`), so an
interrupted run resumes where it stopped; the final JSON `{class: [sentences]}` is written atomically
only when every class is done, with a report of rejected samples beside it.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from mmovod.descriptions.description_cache import DescriptionCache, cache_path_for
from mmovod.descriptions.client import DescriptionClient, RetryPolicy, make_client
from mmovod.descriptions.recipe import RequestSettings, default_api
from mmovod.io.atomic import check_output_path
from mmovod.io.errors import InputError, interruption_keeps
from mmovod.io.json_files import save_json
from mmovod.io.wording import plural

log = logging.getLogger(__name__)


def output_path_for(template: str, model: str) -> Path:
    """`template` with `{}` replaced by the model name (`/` in model names becomes `_`)."""
    return Path(template.replace("{}", model.replace("/", "_")))


def generate_descriptions(
    names: Sequence[str],
    describer: DescriptionClient,
    output: str | os.PathLike,
    workers: int = 4,
    on_done: Callable[[str], None] | None = None,
    keep_cache: bool = False,
) -> dict[str, list[str]]:
    """Describe every class in `names` and write `{name: [sentences]}` (in `names` order) to `output`.

    Classes already in the cache beside `output` are not asked again; new ones are asked with
    `workers` concurrent requests and appended to the cache as they finish (`on_done(name)` is
    called for each, and first for each class found in the cache). The output is written atomically once all are done; the cache is then
    removed unless `keep_cache` (a partial `--limit` run keeps it for the full run). Rejected
    samples of every class, cached or new, end up in `describer.rejected`.
    """
    settings = describer.settings
    check_output_path(output)
    cache = DescriptionCache(check_output_path(cache_path_for(output, settings.model, settings.api)), settings)
    done = cache.load()
    describer.rejected.update({n: r for n, r in cache.rejected.items() if n in names})
    todo = [n for n in names if n not in done]
    if len(todo) < len(names):
        log.info("resuming: %d of %d classes already in %s", len(names) - len(todo), len(names), cache.path)
    if on_done is not None:
        for name in names:
            if name in done:
                on_done(name)

    def kept() -> str | None:  # what a Ctrl-C leaves for the next run
        return f"{len(done)} of {plural(len(names), 'class', 'classes')} are kept in {cache.path}" if done else None

    with interruption_keeps(kept, "run the same command again to ask only for the others"), \
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future, str] = {pool.submit(describer.describe, n): n for n in todo}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                # cache every success of this round before raising the first failure
                for future in sorted(finished, key=lambda f: f.exception() is not None):
                    name = futures[future]
                    done[name] = future.result()
                    cache.append(name, done[name], describer.rejected.get(name))
                    if on_done is not None:
                        on_done(name)
        except BaseException:
            describer.stop_event.set()
            pool.shutdown(wait=True, cancel_futures=True)
            if not done:  # nothing to resume from: leave no cache behind
                cache.path.unlink(missing_ok=True)
            raise
    result = {n: done[n] for n in names}
    save_json(output, result, indent=True)
    if not keep_cache:
        cache.path.unlink()
    return result


@dataclass(frozen=True)
class DescribedClasses:
    """What `describe_classes` wrote: `classes` x `samples` descriptions to `path`; `rejected`: per
    class with rejected samples, {reason: count} (also written to `report_path` when not empty)."""

    classes: int
    samples: int
    path: Path
    retried: int
    rejected: dict[str, dict[str, int]]
    report_path: Path | None


def report_path_for(output: str | os.PathLike) -> Path:
    return Path(str(output) + ".report.json")


def describe_classes(
    names: Sequence[str],
    output_template: str,
    model: str,
    *,
    api: str | None = None,
    base_url: str | None = None,
    workers: int = 4,
    timeout: float = 60.0,
    max_retries: int = 6,
    backoff: float = 1.0,
    limit: int | None = None,
) -> DescribedClasses:
    """Describe the classes `names` (the first `limit` when given) with `model` and write them to
    `output_path_for(output_template, model)`, with a progress bar.

    `api` defaults to `default_api(model)`. Raises ServiceError when the server keeps failing (the
    finished classes stay in the cache for a re-run).
    """
    for transport in ("httpx", "httpx2"):  # the SDK's HTTP client logs one INFO line per request
        logging.getLogger(transport).setLevel(logging.WARNING)
    if workers < 1 or (limit is not None and limit < 1) or max_retries < 0:
        raise InputError("--workers and --limit must be >= 1, --max-retries >= 0")
    if not (timeout > 0 and backoff >= 0):
        raise InputError(f"--timeout must be positive and --backoff not negative, got {timeout} and {backoff}")
    output = output_path_for(output_template, model)
    names = list(names)[:limit]
    settings = RequestSettings(model=model, api=api or default_api(model))
    client, api_key = make_client(base_url, timeout)
    describer = DescriptionClient(client, settings, RetryPolicy(max_retries, backoff), api_key)
    with tqdm(total=len(names), unit="class", desc=f"{settings.model} ({settings.api})") as bar:
        def done(_: str) -> None:
            bar.update()
            bar.set_postfix(retried=describer.retried)

        generate_descriptions(names, describer, output, workers, done, keep_cache=limit is not None)
    rejected = {n: describer.rejected[n] for n in names if n in describer.rejected}
    report = report_path_for(output)
    if rejected:
        save_json(report, {"rejected_samples_per_class": rejected}, indent=True)
    else:
        report.unlink(missing_ok=True)  # from an earlier run; this one rejected nothing
    return DescribedClasses(len(names), settings.samples, output, describer.retried, rejected,
                            report if rejected else None)
