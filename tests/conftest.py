import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest


def _snapshot(folder: Path) -> dict:
    """Every path under `folder` with its kind, size and modification time (the bytes of files are
    compared by the callers that care)."""
    if not folder.is_dir():
        return {}
    return {p: (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def bad_input(capsys):
    """Call `main(argv)` and check the bad-input contract: exit 2, one `<tool>.py: error: ...` line (after
    any progress bars or warnings) holding `needle`, no traceback, and the output untouched: `out` not
    written (or, with `existing`, still holding exactly those bytes, written before the call), nothing
    new or changed beside it, no temp file. `resumable` tools (a folder of resumable state) may leave
    that state, but no temp file."""

    def check(main, argv, out, needle, existing=None, resumable=False):
        out = Path(out)
        if existing is not None:
            out.write_bytes(existing)
        existed = out.exists()
        before = _snapshot(out.parent)
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, err
        prog = main.__module__.rsplit(".", 1)[-1] + ".py"
        errors = [line for line in err if ": error: " in line]
        assert len(errors) == 1 and errors[0] == err[-1] and needle in errors[0], err
        assert errors[0].startswith(f"{prog}: error: "), err
        assert not any("Traceback" in line for line in err), err
        assert not list(out.parent.rglob(f".{out.name}.*")), "temp file left behind"
        if existing is not None:
            assert out.read_bytes() == existing, "an earlier output was changed"
        if not resumable:
            assert existed or not out.exists(), "output written"
            assert _snapshot(out.parent) == before, "files beside the output were written or changed"

    return check


@pytest.fixture(autouse=True)
def no_network_probe(monkeypatch):
    """Tests never reach the network: the CLIP weights' reachability probe answers 'unreachable' for any host but
    loopback, without connecting (a test that needs the online path replaces it)."""
    from mmovod.clip import weights

    probe = weights.hub_unreachable
    monkeypatch.setattr(weights, "hub_unreachable",
                        lambda url, *a, **k: probe(url, *a, **k) if "//127.0.0.1" in url else True)
