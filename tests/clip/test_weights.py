"""Released CLIP weights: found in the local caches without a request, and a one-line error before any Hub call offline.

No test reaches the network: the Hub is switched off (HF_HUB_OFFLINE) or the reachability probe is replaced, and
the probe itself is tried on loopback only.
"""
import socket
import time

import huggingface_hub.constants
import open_clip
import pytest

from mmovod.clip import factory, weights
from mmovod.clip.factory import load_clip
from mmovod.io.errors import InputError
from tools import download_assets, models

# ViT-B/32 + openai: open_clip takes it from the Hub repo timm/vit_base_patch32_clip_224.openai (.safetensors first)
REPO_FOLDER = "models--timm--vit_base_patch32_clip_224.openai"
REVISION = "a" * 40


class HubCalled(Exception):
    pass


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; open_clip's model creation raises HubCalled, recording the Hub's offline flag."""
    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls = []

    def create(*args, **kwargs):
        calls.append(huggingface_hub.constants.HF_HUB_OFFLINE)
        raise HubCalled

    monkeypatch.setattr(open_clip, "create_model_and_transforms", create)
    return cache, calls


def put_in_hub_cache(cache, filename="open_clip_model.safetensors"):
    repo = cache / REPO_FOLDER
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text(REVISION)
    (repo / "snapshots" / REVISION).mkdir(parents=True)
    path = repo / "snapshots" / REVISION / filename
    path.write_bytes(b"weights")
    return path


def test_offline_without_the_weights_fails_in_one_line_before_any_hub_call(hub_cache, monkeypatch):
    cache, calls = hub_cache
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        load_clip("ViT-B/32", device="cpu")
    assert time.monotonic() - start < 2
    message = str(err.value)
    assert "\n" not in message and calls == []
    assert "HF_HUB_OFFLINE" in message and "`mmovod download_assets --clip ViT-B/32`" in message
    assert str(cache / REPO_FOLDER) in message


def test_no_network_is_found_by_the_probe(hub_cache, monkeypatch):
    _, calls = hub_cache
    probed = []
    monkeypatch.setattr(weights, "hub_unreachable", lambda url: probed.append(url) or True)
    with pytest.raises(InputError, match=r"no network: huggingface.co cannot be reached.*"
                                         r"mmovod download_assets --clip ViT-B-16 --pretrained laion2b_s34b_b88k`"):
        load_clip("ViT-B-16", pretrained="laion2b_s34b_b88k", device="cpu")
    assert calls == [] and probed == ["https://huggingface.co/laion/CLIP-ViT-B-16-laion2B-s34B-b88K/resolve/main/"
                                      "open_clip_model.safetensors"]


def test_online_without_the_weights_lets_open_clip_download(hub_cache, monkeypatch):
    _, calls = hub_cache
    monkeypatch.setattr(weights, "hub_unreachable", lambda url: False)
    with pytest.raises(HubCalled):
        load_clip("ViT-B/32", device="cpu")
    assert calls == [False]  # the Hub stays on: open_clip may download


@pytest.mark.parametrize("filename", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
def test_cached_weights_load_with_the_hub_off_even_offline(hub_cache, monkeypatch, filename):
    cache, calls = hub_cache
    path = put_in_hub_cache(cache, filename)
    monkeypatch.setattr(weights, "hub_unreachable", lambda url: pytest.fail("probed although the weights are here"))
    assert weights.weight_source("ViT-B-32", "openai").cached_file() == path
    with pytest.raises(HubCalled):
        load_clip("ViT-B/32", device="cpu")
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False  # switched off only during the call
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubCalled):
        load_clip("ViT-B/32", device="cpu")
    assert calls == [True, True]  # open_clip reads the cache with no Hub request


def test_the_offline_test_fails_when_the_cache_check_is_skipped(hub_cache, monkeypatch):
    """Break the check on purpose: without it, open_clip is asked for the weights (the Hub call)."""
    _, calls = hub_cache
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(factory, "weights_are_cached", lambda *args: False)
    with pytest.raises(HubCalled):
        load_clip("ViT-B/32", device="cpu")
    assert calls == [True]


def test_url_hosted_weights_are_found_in_the_clip_folder(tmp_path, monkeypatch):
    """Without huggingface_hub open_clip takes OpenAI weights from their URL, cached as ~/.cache/clip/ViT-B-32.pt
    (the file OpenAI's clip package keeps there too)."""
    monkeypatch.setattr(open_clip.pretrained, "has_hf_hub", lambda necessary=False: False)
    monkeypatch.setattr(weights, "URL_CACHE", tmp_path)
    source = weights.weight_source("ViT-B-32", "openai")
    assert source.hub_repo is None and source.cache_folder() == tmp_path
    assert source.cached_file() is None
    (tmp_path / "ViT-B-32.pt").write_bytes(b"weights")
    assert source.cached_file() == tmp_path / "ViT-B-32.pt"


def test_the_probe_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert weights.hub_unreachable(f"http://127.0.0.1:{port}/x") is False
    start = time.monotonic()
    assert weights.hub_unreachable(f"http://127.0.0.1:{port}/x") is True  # closed now: refused at once
    assert time.monotonic() - start < 1


def test_download_assets_offline_says_what_to_do_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", lambda *a, **k: pytest.fail("download tried"))
    cache = tmp_path / "clip-cache"
    code = download_assets.main(["--clip", "ViT-B/32", "--only", "clip", "--clip-cache-dir", str(cache),
                                 "--dest", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("download_assets.py: error: cannot download the openai weights of ViT-B-32 "
                             "(HF_HUB_OFFLINE is set)")
    assert err[0].endswith(f"copy {cache / REPO_FOLDER} here, or fetch from a mirror with --base-url")


def test_a_long_download_error_is_cut_at_a_word():
    from mmovod.assets.clip_weights import first_words

    text = "Connection to huggingface.co timed out after many retries " * 10 + "\nsecond line"
    cut = first_words(text, limit=60)
    assert cut == "Connection to huggingface.co timed out after many retries ..."
    assert first_words("short\nsecond") == "short"


@pytest.mark.slow
def test_models_lists_open_clip_weights_and_marks_those_here(hub_cache, monkeypatch, capsys):
    cache, _ = hub_cache
    assert models.main(["--model", "ViT-B/32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines.pop(0).startswith("* world     shipped, works offline")  # the shipped CLIP comes first
    tags = open_clip.list_pretrained_tags_by_model("ViT-B-32")
    assert [line.split()[1] for line in lines[:-1]] == tags and all(line.startswith("  ") for line in lines[:-1])
    assert lines[-1] == f"0 of {len(tags)} released open_clip weights are downloaded here (*), and world ships with mmovod"
    path = put_in_hub_cache(cache)
    assert models.main(["--here"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    sharing = [(name, tag) for name, tag in open_clip.list_pretrained()  # the same Hub file: ViT-B-32(-quickgelu)
               if open_clip.get_pretrained_cfg(name, tag).get("hf_hub") == "timm/vit_base_patch32_clip_224.openai/"]
    assert len(sharing) == 2
    assert [line.split() for line in lines[:-1]] == [["*", name, tag, f"({path})"] for name, tag in sharing]
    assert lines[-1] == f"2 of {len(open_clip.list_pretrained())} released open_clip weights are downloaded here (*), and world ships with mmovod"
    assert models.main(["--model", "no-such-model"]) == 2


@pytest.mark.parametrize("content", [b"\xff\xfe garbage", b"", b"../../../../outside"], ids=["binary", "empty", "path"])
def test_models_names_a_damaged_refs_main_in_one_line(hub_cache, bad_input, content):
    cache, _ = hub_cache
    put_in_hub_cache(cache)
    ref = cache / REPO_FOLDER / "refs/main"
    ref.write_bytes(content)
    bad_input(models.main, ["--model", "ViT-B/32", "--here"], cache / "none", f"{ref}: not a commit hash")


def test_models_refuses_a_clip_cache_dir_that_is_not_a_folder(tmp_path, bad_input):
    cache = tmp_path / "cache"
    cache.write_text("a file")
    bad_input(models.main, ["--clip-cache-dir", str(cache)], tmp_path / "none", f"--clip-cache-dir {cache}: not a folder")
