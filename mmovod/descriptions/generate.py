"""LLM class descriptions through an OpenAI-compatible API: prompts, requests, retries, resumable cache.

For each class the model is asked `Describe what a <class> looks like.` (`an` before a vowel) for 10
samples at temperature 0.99, at most 50 tokens, stopping at `.`; each sample has its blank lines
removed and a `.` appended (the recipe of the original MM-OVOD script, which used the removed v0
OpenAI API). Instruct models go through the completions endpoint, chat models through chat
completions.

Answers are cleaned (the authors' own file has 69 of 12,030 sentences that are just "."): an empty,
one-word or duplicate (within its class, ignoring case and spacing) sample is re-sampled, for at
most `RESAMPLE_ROUNDS` requests that return such samples; a class still short after that keeps the
good samples it has. What was rejected is counted per class (`DescriptionClient.rejected`, kept in
the cache) and reported.

Every finished class is appended (one JSON line, flushed and fsynced) to a cache beside the output,
whose first line records the request settings; a re-run with the same settings skips finished
classes, so an interrupted run resumes where it stopped. The final JSON is written atomically only
when every class is done.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import openai
import orjson
from tqdm import tqdm

from mmovod.io.atomic import atomic_open, check_output_path, output_error
from mmovod.io.errors import InputError
from mmovod.io.json_files import read_bytes, save_json
from mmovod.classifiers.text_inputs import description_key
from mmovod.readers.vocabulary import read_vocabulary

log = logging.getLogger(__name__)

SAMPLES_PER_CLASS = 10
TEMPERATURE = 0.99
MAX_TOKENS = 50
STOP = "."
PROMPT = "Describe what {article} {name} looks like."
# models served through the (legacy) completions endpoint; everything else goes through chat completions
COMPLETION_MODEL_MARKERS = ("instruct", "davinci", "babbage", "curie", "text-ada")
SUGGESTED_MODELS = "gpt-4o-mini (chat) or gpt-3.5-turbo-instruct (completions)"
RESAMPLE_ROUNDS = 5


class ServiceError(Exception):
    """The server kept failing (after retries) or answered something unusable; finished classes stay cached."""


def default_api(model: str) -> str:
    """'completions' for instruct / GPT-3 style model names, else 'chat'."""
    lowered = model.lower()
    return "completions" if any(m in lowered for m in COMPLETION_MODEL_MARKERS) else "chat"


def describe_prompt(name: str) -> str:
    """The question asked about a class: `an` before a vowel, else `a`."""
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return PROMPT.format(article=article, name=name)


def clean_sample(text: str | None) -> str:
    """One sample as stored: blank lines removed, surrounding whitespace stripped, a `.` appended."""
    return (text or "").replace("\n\n", "").strip() + "."


def sample_problem(sample: str, seen: set[str]) -> str | None:
    """Why a cleaned sample is rejected ("empty", "one word", "duplicate" of one in `seen`), or None.

    `seen` holds the accepted samples' comparison keys (case-folded words); an accepted sample's key
    is added to it.
    """
    words = sample.rstrip(".").split()
    if not words:
        return "empty"
    if len(words) == 1:
        return "one word"
    key = " ".join(words).casefold()
    if key in seen:
        return "duplicate"
    seen.add(key)
    return None


def output_path_for(template: str, model: str) -> Path:
    """`template` with `{}` replaced by the model name (`/` in model names becomes `_`)."""
    return Path(template.replace("{}", model.replace("/", "_")))


def cache_path_for(output: str | os.PathLike, model: str, api: str) -> Path:
    """The resume cache of `output` for one model and endpoint: a run with another model starts its own."""
    return Path(f"{output}.{re.sub(r'[^A-Za-z0-9._-]', '_', model)}-{api}.partial.jsonl")


@dataclass(frozen=True)
class RequestSettings:
    """What a sample depends on; a cache made with other settings is not reused."""

    model: str
    api: str
    samples: int = SAMPLES_PER_CLASS
    temperature: float = TEMPERATURE
    max_tokens: int = MAX_TOKENS
    stop: str = STOP
    prompt: str = PROMPT
    clean: bool = True  # empty, one-word and duplicate samples are re-sampled


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429, 5xx, timeouts and dropped connections: wait `backoff * 2**attempt` seconds (or
    the server's Retry-After), at most `max_wait`, up to `max_retries` times per request."""

    max_retries: int = 6
    backoff: float = 1.0
    max_wait: float = 60.0


def response_texts(body: bytes, api: str) -> list[str]:
    """The sample texts of a completions (`api` "completions") or chat-completions response body, read
    from the wire format itself (the SDK does not check it); ValueError saying what is wrong."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError(f"a body that is not JSON ({body[:60]!r})") from None
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list):
        raise ValueError("JSON without a 'choices' list")
    texts = []
    for choice in choices:
        holder = choice.get("message") if api == "chat" and isinstance(choice, dict) else choice
        key = "content" if api == "chat" else "text"
        if not isinstance(holder, dict) or not isinstance(holder.get(key, 0), (str, type(None))):
            raise ValueError(f"a choice without a '{key}' string ({str(choice)[:60]})")
        texts.append(holder[key] or "")
    return texts


RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


def _server_message(exc: openai.APIStatusError, secret: str | None) -> str:
    """The server's error message on one line, with the API key masked should it echo it."""
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if body else None
    text = " ".join(str(message or exc.message or type(exc).__name__).split())[:300]
    return text.replace(secret, "***") if secret else text


class DescriptionClient:
    """Asks one model for class descriptions, retrying transient failures. Thread-safe."""

    def __init__(self, client: openai.OpenAI, settings: RequestSettings, retry: RetryPolicy = RetryPolicy(),
                 api_key: str | None = None):
        self.client = client
        self.settings = settings
        self.retry = retry
        self._secret = api_key
        self._lock = threading.Lock()
        self.retried = 0
        self.rejected: dict[str, dict[str, int]] = {}  # class -> {reason: count}, for classes with rejects
        self.stop_event = threading.Event()

    def describe(self, name: str) -> list[str]:
        """`settings.samples` cleaned descriptions of class `name` (asks again when a server caps `n`,
        and for rejected samples, see the module docstring)."""
        prompt = describe_prompt(name)
        samples: list[str] = []
        seen: set[str] = set()
        rejected: dict[str, int] = {}
        rounds = 0
        while len(samples) < self.settings.samples and rounds <= RESAMPLE_ROUNDS:
            texts = self._request(prompt, self.settings.samples - len(samples))
            if not texts:
                raise ServiceError(f"the server returned no choices for {prompt!r}")
            before = sum(rejected.values())
            for text in texts[: self.settings.samples - len(samples)]:
                sample = clean_sample(text)
                problem = sample_problem(sample, seen) if self.settings.clean else None
                if problem is None:
                    samples.append(sample)
                else:
                    rejected[problem] = rejected.get(problem, 0) + 1
            rounds += sum(rejected.values()) > before
        if not samples:
            raise ServiceError(f"no usable description of {name!r} in {rounds} answers with only empty, "
                               "one-word or duplicate samples; try another model")
        if len(samples) < self.settings.samples:
            rejected["missing"] = self.settings.samples - len(samples)
        if rejected:
            with self._lock:
                self.rejected[name] = rejected
        return samples

    def _create(self, prompt: str, n: int) -> list[str]:
        s = self.settings
        common = dict(model=s.model, n=n, temperature=s.temperature, max_tokens=s.max_tokens, stop=s.stop)
        if s.api == "chat":
            raw = self.client.chat.completions.with_raw_response.create(
                messages=[{"role": "user", "content": prompt}], **common)
        else:
            raw = self.client.completions.with_raw_response.create(prompt=prompt, **common)
        try:
            return response_texts(raw.http_response.content, s.api)
        except ValueError as exc:
            raise InputError(f"the server at {self.client.base_url} answered HTTP {raw.status_code} with {exc} instead "
                             f"of an OpenAI {s.api} response (a proxy, or a server of another kind? check --base-url "
                             "and --api)") from None

    def _wait(self, exc: Exception, attempt: int) -> float:
        wait_s = self.retry.backoff * 2 ** attempt
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header is not None:
            try:
                wait_s = float(header)
            except ValueError:
                pass
        return max(0.0, min(wait_s, self.retry.max_wait))

    def _request(self, prompt: str, n: int) -> list[str]:
        model = self.settings.model
        for attempt in range(self.retry.max_retries + 1):
            if self.stop_event.is_set():
                raise ServiceError("stopped")
            try:
                return self._create(prompt, n)
            except RETRYABLE as exc:
                what = f"HTTP {exc.status_code}" if isinstance(exc, openai.APIStatusError) else type(exc).__name__
                if attempt == self.retry.max_retries:
                    raise ServiceError(
                        f"{what} from the server after {attempt + 1} attempts for {prompt!r}; finished classes "
                        "are cached, re-run the same command to resume") from None
                with self._lock:
                    self.retried += 1
                wait_s = self._wait(exc, attempt)
                log.debug("%s for %r, retrying in %.2fs", what, prompt, wait_s)
                self.stop_event.wait(wait_s)
            except openai.AuthenticationError:
                raise InputError("the server rejected the API key (HTTP 401): set a valid key in OPENAI_API_KEY") from None
            except openai.PermissionDeniedError as exc:
                raise InputError(f"the API key may not use model {model!r} (HTTP 403): "
                                 f"{_server_message(exc, self._secret)}") from None
            except openai.NotFoundError as exc:
                raise InputError(
                    f"the server does not know model {model!r} (HTTP 404: {_server_message(exc, self._secret)}); "
                    f"retired models such as text-davinci-003 are gone, use a current one, e.g. --openai-model "
                    f"{SUGGESTED_MODELS}") from None
            except openai.APIStatusError as exc:
                raise InputError(f"the server refused the {self.settings.api} request for model {model!r} "
                                 f"(HTTP {exc.status_code}: {_server_message(exc, self._secret)}); "
                                 "try the other --api if the model is a chat or an instruct model") from None
        raise AssertionError("unreachable")


class DescriptionCache:
    """Append-only JSON-lines cache of finished classes; line 1 holds the request settings."""

    def __init__(self, path: str | os.PathLike, settings: RequestSettings):
        self.path = Path(path)
        self.settings = settings
        self.rejected: dict[str, dict[str, int]] = {}  # the cached classes' rejected samples

    def load(self) -> dict[str, list[str]]:
        """Finished classes from an earlier run (a torn last line from a kill is dropped), creating the file if new."""
        header = orjson.dumps({"settings": asdict(self.settings)}) + b"\n"
        if not self.path.exists():
            with atomic_open(self.path, "wb") as handle:
                handle.write(header)
            return {}
        data = read_bytes(self.path, "description cache")
        lines = data.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is a torn write (or empty)
        if not complete or complete[0] + b"\n" != header:
            raise InputError(f"{self.path}: cache of a run with other settings (model, API or prompt); "
                             "delete it to start over")
        done: dict[str, list[str]] = {}
        for number, line in enumerate(complete[1:], start=2):
            try:
                entry = orjson.loads(line)
                done[entry["class"]] = entry["descriptions"]
                if entry.get("rejected"):
                    self.rejected[entry["class"]] = entry["rejected"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{self.path}: line {number} is not a cache entry; delete the file to start over") from None
        if lines[-1]:
            log.info("%s: dropping a torn last line", self.path)
            try:
                os.truncate(self.path, len(data) - len(lines[-1]))
            except OSError as exc:
                raise output_error(self.path, exc) from None
        return done

    def append(self, name: str, descriptions: list[str], rejected: dict[str, int] | None = None) -> None:
        entry = {"class": name, "descriptions": descriptions, **({"rejected": rejected} if rejected else {})}
        try:
            with open(self.path, "ab") as handle:
                handle.write(orjson.dumps(entry) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise output_error(self.path, exc) from None


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
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
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


def make_client(base_url: str | None, timeout: float) -> tuple[openai.OpenAI, str | None]:
    """The SDK client with retries left to us, and the key (to mask it should a server echo it).

    `base_url` falls back to $OPENAI_BASE_URL, else the OpenAI API; the key is $OPENAI_API_KEY.
    """
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or None
    if api_key is None and base_url is None:
        raise InputError("OPENAI_API_KEY is not set: export your key (or pass --base-url for a local "
                         "OpenAI-compatible server that needs none)")
    client = openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0, timeout=timeout)
    return client, api_key


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
    ann_path: str | os.PathLike,
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
    """Describe the classes of the vocabulary `ann_path` (any format of `mmovod.readers.vocabulary`;
    the first `limit` classes when given) with `model` and write them to
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
    vocab = read_vocabulary(ann_path)
    names = [description_key(c.as_category(i)) for i, c in enumerate(vocab.classes)][:limit]
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
