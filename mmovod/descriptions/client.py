"""An OpenAI-compatible client that asks one model for a class's descriptions (`recipe`), retrying
429s, 5xx, timeouts and dropped connections; every other refusal is one clear InputError. What was
rejected is counted per class (`DescriptionClient.rejected`)."""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import openai
import orjson

from mmovod.descriptions.recipe import RESAMPLE_ROUNDS, SUGGESTED_MODELS, RequestSettings, clean_sample, describe_prompt, sample_problem
from mmovod.io.errors import InputError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """The server kept failing (after retries) or answered something unusable; finished classes stay cached."""


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


# no token of a tokenizer is longer than this many characters: a longer sample means a server ignoring max_tokens
CHARS_PER_TOKEN_BOUND = 40


def check_sample_lengths(texts: list[str], max_tokens: int) -> None:
    """ValueError when a sample is longer than `max_tokens` tokens could spell (a server ignoring max_tokens)."""
    longest = max(map(len, texts), default=0)
    if longest > max_tokens * CHARS_PER_TOKEN_BOUND:
        raise ValueError(f"a sample of {longest} characters, far more than max_tokens={max_tokens} allows "
                         "(a server that ignores max_tokens)")


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
            texts = response_texts(raw.http_response.content, s.api)
            check_sample_lengths(texts, s.max_tokens)
            return texts
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
