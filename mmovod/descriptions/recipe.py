"""The description recipe: what each class is asked and how an answer becomes a sample.

For each class the model is asked `Describe what a <class> looks like.` (`an` before a vowel) for 10
samples at temperature 0.99, at most 50 tokens, stopping at `.`; each sample has its blank lines
removed and a `.` appended (the recipe of the original MM-OVOD script, which used the removed v0
OpenAI API). Instruct models go through the completions endpoint, chat models through chat
completions.

Answers are cleaned (the authors' own file has 69 of 12,030 sentences that are just "."): an empty,
one-word or duplicate (within its class, ignoring case and spacing) sample is re-sampled, for at
most `RESAMPLE_ROUNDS` requests that return such samples; a class still short after that keeps the
good samples it has.
"""
from __future__ import annotations

from dataclasses import dataclass

SAMPLES_PER_CLASS = 10
TEMPERATURE = 0.99
MAX_TOKENS = 50
STOP = "."
PROMPT = "Describe what {article} {name} looks like."
# models served through the (legacy) completions endpoint; everything else goes through chat completions
COMPLETION_MODEL_MARKERS = ("instruct", "davinci", "babbage", "curie", "text-ada")
SUGGESTED_MODELS = "gpt-4o-mini (chat) or gpt-3.5-turbo-instruct (completions)"
RESAMPLE_ROUNDS = 5


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
