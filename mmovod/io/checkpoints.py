"""Reading torch checkpoint files without running code from them.

`torch.load(weights_only=True)` rebuilds tensors and plain containers only: a pickle that names any
other global (a class or function, whose call could run code) is refused. A few harmless types that
training scripts put into released checkpoints are allow-listed: numpy scalars (`np.float64(0.71)`)
and the script's parsed command-line flags (a Namespace), read back as `SavedNamespace`, a plain
attribute bag: the class the file names is never imported or called. Anything else is refused with
one line naming the type, unless the caller opts in (`trust=True`) for a file the user trusts.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch

from mmovod.io.errors import InputError

try:
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _numpy_scalar


class SavedNamespace(SimpleNamespace):
    """A training script's flags (its Namespace) stored in a checkpoint: their values and nothing else."""


# numpy scalars are pickled as scalar(dtype, bytes); the dtype as its class (numpy >= 1.25) plus np.dtype
_NUMPY_DTYPES = [getattr(np.dtypes, f"{name}DType") for name in (
    "Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float16", "Float32", "Float64", "Complex64", "Complex128")]
# objects, or (object, the global name a pickle uses for it): numpy 1 and 2 spell the scalar's module differently
SAFE_GLOBALS = [
    (SavedNamespace, "argparse.Namespace"),  # the pickle's name for it; the module is never imported
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    (_numpy_scalar, "numpy._core.multiarray.scalar"),
    np.dtype,
    *_NUMPY_DTYPES,
]

TRUST_HINT = "load it with trust (--trust-checkpoint) only if you trust where the file comes from"
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+)")


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint", *, trust: bool = False,
                    map_location: Any = "cpu", hint: str = TRUST_HINT) -> Any:
    """The object saved in `path` by `torch.save`, without unpickling anything but tensors, plain
    containers and `SAFE_GLOBALS` (all of pickle with `trust`).

    InputError (one line naming the file) when it is missing, empty, not a torch file, or holds other
    types (naming the first one, and saying `hint`).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {what} {'is a folder' if p.is_dir() else 'not found'}")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: {what} is empty (0 bytes)")
    try:
        if trust:
            return torch.load(p, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise unpickling_error(p, what, exc, hint) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, ImportError) as exc:
        # torch raises these for truncated, random or foreign files (and, with trust, pickle does)
        raise InputError(f"{p}: not a readable {what} ({_first_line(exc)})") from None


def unpickling_error(path: str | os.PathLike, what: str, exc: pickle.UnpicklingError,
                     hint: str = TRUST_HINT) -> InputError:
    """The one-line InputError for a refused `torch.load(weights_only=True)`: the type it would not
    unpickle (with `hint`), or what is wrong with the file."""
    text = str(exc)
    unsafe = _UNSUPPORTED_GLOBAL.search(text)
    if unsafe:
        return InputError(f"{path}: {what} holds {unsafe.group(1)}, a type whose unpickling could run code "
                          f"from the file; refused ({hint})")
    detail = _UNPICKLER_DETAIL.search(text)
    reason = detail.group(1).strip() if detail else _first_line(exc)
    return InputError(f"{path}: not a readable {what} ({reason})")


def check_finite_weights(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, what: str = "checkpoint") -> None:
    """InputError naming the first floating-point tensor of `tensors` (weights read from `path`) that holds
    NaN or inf: a diverged or damaged file, whose every output would be NaN."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path}: {what} tensor {name} holds NaN or infinite values (a diverged or damaged file)")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__
