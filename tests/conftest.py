"""Shared fixtures: the demo dataset and a tiny CLIP (made once per session), the bad-input contract,
a fake OpenAI server, one intra-op thread. Fakes and reference implementations live in tests/fakes.py
and tests/references.py; no test module imports another."""
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest

from tests.fakes import FakeOpenAI, start


@dataclass(frozen=True)
class TinyClip:
    """The tiny demo CLIP architecture with seeded random weights saved as a user checkpoint."""

    config: Path
    checkpoint: Path

    @property
    def flags(self) -> list[str]:
        """The tool flags that select it, on the CPU."""
        return ["--clip_model", str(self.config), "--pretrained", str(self.checkpoint), "--device", "cpu"]

    def load(self, tower: str = "both"):
        from mmovod.clip.factory import load_clip

        return load_clip(str(self.config), str(self.checkpoint), "cpu", tower=tower)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> TinyClip:
    """A tiny CLIP checkpoint (random weights, seed 0), made once per session."""
    from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path

    checkpoint = tmp_path_factory.mktemp("tiny_clip") / "tiny_clip.pt"
    save_random_checkpoint(tiny_clip_config_path(), checkpoint, seed=0)
    return TinyClip(tiny_clip_config_path(), checkpoint)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_clip):
    """`tiny_clip` loaded once (both towers, CPU); tests must not change it."""
    return tiny_clip.load()


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> Path:
    """The demo tree (`make_demo_dataset`), made once per session; read-only: a test that writes into it
    works on a copy (`shutil.copytree`)."""
    from mmovod.demo.dataset import make_demo_dataset

    root = tmp_path_factory.mktemp("demo_dataset") / "demo"
    make_demo_dataset(root)
    return root


@pytest.fixture(scope="session")
def eval_demo(tmp_path_factory, demo_dataset) -> dict:
    """A copy of the demo tree with four random classifiers (`tests.eval_fixtures.make_eval_demo`), made once
    per session; read-only."""
    from tests.eval_fixtures import make_eval_demo

    return make_eval_demo(demo_dataset, tmp_path_factory.mktemp("eval_demo"))


@pytest.fixture(scope="session")
def own_classes(tmp_path_factory, tiny_clip) -> dict:
    """Photos of three classes of your own, a vocabulary naming them, descriptions, an LVIS-format copy, a tiny
    CLIP and two aggregators (`tests.own_classes.make_own_classes`), made once per session; read-only."""
    from tests.own_classes import make_own_classes

    return make_own_classes(tmp_path_factory.mktemp("own"), tiny_clip.checkpoint)


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


@pytest.fixture
def server():
    """A fake OpenAI-compatible server (`tests.fakes.FakeOpenAI`) on 127.0.0.1, scriptable per test."""
    srv = FakeOpenAI()
    start(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one intra-op thread (and do not fight other jobs for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_network_probe(monkeypatch):
    """Tests never reach the network: the CLIP weights' reachability probe answers 'unreachable' for any host but
    loopback, without connecting (a test that needs the online path replaces it)."""
    from mmovod.clip import weights

    probe = weights.hub_unreachable
    monkeypatch.setattr(weights, "hub_unreachable",
                        lambda url, *a, **k: probe(url, *a, **k) if "//127.0.0.1" in url else True)
