"""Small helpers for the words of user messages."""
from __future__ import annotations


def plural(n: int, one: str, many: str) -> str:
    """"1 photo", "2 photos": `n` with the form of the words that fits it."""
    return f"{n} {one if n == 1 else many}"
