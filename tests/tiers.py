"""The quick tier (`pytest -m "not slow"`, for working on the code) checks each kind of case once; `make test` runs
every case. `quick_once` marks the repeats of a parametrised family slow."""
from typing import Any, Callable, Sequence

import pytest


def quick_once(cases: Sequence[Any], ids: Sequence[str] | Callable[[Any], str] | None = None,
               kind: Callable[[Any], Any] = lambda case: None,
               always_slow: Callable[[Any], bool] = lambda case: False) -> list:
    """`cases` as pytest params (a tuple is one case of several arguments), each marked slow when a case of the
    same `kind` came before it (by default every case is of one kind: only the first stays quick) or when
    `always_slow` says so."""
    seen, params = set(), []
    for i, case in enumerate(cases):
        key = kind(case)
        slow = key in seen or always_slow(case)
        seen.add(key)
        name = ids(case) if callable(ids) else None if ids is None else ids[i]
        values = case if isinstance(case, tuple) else (case,)
        params.append(pytest.param(*values, id=name, marks=[pytest.mark.slow] if slow else []))
    return params
