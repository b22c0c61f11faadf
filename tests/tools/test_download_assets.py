"""tools/download_assets.py against a local HTTP server on 127.0.0.1: every asset kind, mirrors, resume, bad files."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

import mmovod.assets.fetch
import mmovod.io.downloads
from mmovod.aggregator.model import VisualAggregator
from mmovod.assets.checks import check_asset_file, sha256_of
from mmovod.assets.manifest import load_manifest
from mmovod.demo.world_models import save_random_checkpoint, tiny_clip_config_path
from tests.http_server import FileServer, Route
from tools.download_assets import main

ROOT = Path(__file__).resolve().parents[2]
ARRAY_PATH = "datasets/metadata/feats_author.npy"
JSON_PATH = "datasets/metadata/cat_info.json"
CKPT_PATH = "checkpoints/visual_aggregator/agg_ckpt.pth"


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def checkpoint_bytes(model_or_state):
    buffer = io.BytesIO()
    state = model_or_state if isinstance(model_or_state, dict) else model_or_state.state_dict()
    torch.save({"state_dict": state}, buffer)
    return buffer.getvalue()


def tar_bytes(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def release(tmp_path):
    """Served files (array, JSON, tar-packed aggregator checkpoint), a manifest naming them, a --dest."""
    torch.manual_seed(0)
    files = {
        "array": npy_bytes(np.random.default_rng(0).standard_normal((60, 16)).astype(np.float16)),
        "json": json.dumps([{"id": i + 1, "image_count": 3 * i} for i in range(6)]).encode(),
        "ckpt": checkpoint_bytes(VisualAggregator(dim=16, num_layers=1)),
    }
    with FileServer() as server:
        server.routes["/up/feats_author.npy"] = Route(files["array"])
        server.routes["/up/cat_info.json"] = Route(files["json"], content_type="application/json")
        server.routes["/up/agg_ckpt.pth.tar"] = Route(tar_bytes({"visual_aggregator/agg_ckpt.pth": files["ckpt"]}))
        assets = [
            {"name": "agg_ckpt", "group": "checkpoints", "url": server.url + "/up/agg_ckpt.pth.tar", "path": CKPT_PATH,
             "check": {"kind": "aggregator_checkpoint", "num_layers": 1, "dim": 16}, "unpack": "tar"},
            {"name": "feats_author", "group": "metadata", "url": server.url + "/up/feats_author.npy",
             "path": ARRAY_PATH, "check": {"kind": "array", "shape": [60, 16], "dtypes": ["float32", "float16"]}},
            {"name": "cat_info", "group": "metadata", "url": server.url + "/up/cat_info.json", "path": JSON_PATH,
             "check": {"kind": "json", "type": "array", "length": 6, "item_keys": ["id", "image_count"]},
             "size": len(files["json"]), "sha256": __import__("hashlib").sha256(files["json"]).hexdigest()},
        ]
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"version": 1, "assets": assets}))
        dest = tmp_path / "repo"
        dest.mkdir()
        args = ["--manifest", str(manifest), "--dest", str(dest), "--retry-wait", "0", "--timeout", "5"]
        yield {"server": server, "files": files, "dest": dest, "args": args, "manifest": manifest}


def tree(root):
    """Every file under `root`, relative, so a test sees leftovers (.part, .unverified) too."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def one_error_line(capsys, code, needle):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert code == 2 and len(errors) == 1 and errors[0] == err[-1] and needle in errors[0], err
    assert not any("Traceback" in line for line in err)
    return errors[0]


def test_every_asset_kind_is_fetched_checked_and_placed(release, capsys):
    assert main(release["args"]) == 0
    dest, files = release["dest"], release["files"]
    assert tree(dest) == [CKPT_PATH, JSON_PATH, ARRAY_PATH]
    assert (dest / ARRAY_PATH).read_bytes() == files["array"]
    assert (dest / JSON_PATH).read_bytes() == files["json"]
    assert (dest / CKPT_PATH).read_bytes() == files["ckpt"]  # the tar member, unpacked
    VisualAggregator.from_checkpoint(dest / CKPT_PATH, num_layers=1)
    out = capsys.readouterr().out
    assert out.count("fetched") == 3

    served = len(release["server"].requests)
    assert main(release["args"]) == 0  # a second run checks what is there and downloads nothing
    assert capsys.readouterr().out.count("present") == 3
    assert len(release["server"].requests) == served


def test_only_picks_assets_by_name_or_group(release, capsys):
    assert main(release["args"] + ["--only", "checkpoints", "cat_info"]) == 0
    assert tree(release["dest"]) == [CKPT_PATH, JSON_PATH]
    code = main(release["args"] + ["--only", "nope"])
    one_error_line(capsys, code, "unknown asset 'nope' (known: agg_ckpt, cat_info, checkpoints, feats_author, metadata)")


def test_list_shows_sources_and_destinations_without_downloading(release, capsys):
    assert main(release["args"] + ["--list", "--base-url", "http://mirror.example/mm"]) == 0
    out = capsys.readouterr().out
    assert f"from http://mirror.example/mm/{ARRAY_PATH}" in out
    assert f"to   {release['dest'] / CKPT_PATH}" in out
    assert release["server"].requests == []


def test_a_mirror_serves_files_under_their_relative_paths(release):
    server, files = release["server"], release["files"]
    server.routes.clear()
    server.routes[f"/mirror/{ARRAY_PATH}"] = Route(files["array"])
    server.routes[f"/mirror/{JSON_PATH}"] = Route(files["json"])
    server.routes[f"/mirror/{CKPT_PATH}"] = Route(files["ckpt"])  # a prepared tree holds the unpacked .pth
    assert main(release["args"] + ["--base-url", server.url + "/mirror/"]) == 0
    assert (release["dest"] / CKPT_PATH).read_bytes() == files["ckpt"]
    assert (release["dest"] / ARRAY_PATH).read_bytes() == files["array"]
    assert all(path.startswith("/mirror/") for path, _ in server.requests)


def test_a_dropped_connection_leaves_a_part_that_the_next_run_resumes(release, capsys):
    server, dest = release["server"], release["dest"]
    server.routes["/up/feats_author.npy"].drops = [1000]
    code = main(release["args"] + ["--only", "feats_author", "--retries", "0"])
    one_error_line(capsys, code, "connection dropped after 1000 of")
    assert tree(dest) == [ARRAY_PATH + ".part"]
    assert main(release["args"] + ["--only", "feats_author"]) == 0
    assert tree(dest) == [ARRAY_PATH]
    assert (dest / ARRAY_PATH).read_bytes() == release["files"]["array"]
    assert server.requests[-1] == ("/up/feats_author.npy", "bytes=1000-")


def test_a_dropped_connection_is_retried_within_one_run(release):
    release["server"].routes["/up/agg_ckpt.pth.tar"].drops = [500, 4000]
    assert main(release["args"] + ["--only", "agg_ckpt"]) == 0
    assert (release["dest"] / CKPT_PATH).read_bytes() == release["files"]["ckpt"]


@pytest.mark.parametrize("route, needle", [
    (Route(b"<html><head><title>Error</title></head><body>Service unavailable</body></html>", "text/html"), "HTML page"),
    (Route(b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>"), "HTML/XML page"),
    (Route(b"gone", status=404, content_type="text/plain"), "HTTP 404"),
    (Route(npy_bytes(np.zeros((60, 15), np.float16))), "shape (60, 15), expected (60, 16)"),
    (Route(npy_bytes(np.zeros((60, 16), np.int64))), "dtype int64, expected float32 or float16"),
    (Route(b"\x93NUMPY garbage"), "not a readable .npy array"),
])
def test_a_bad_array_download_is_one_line_and_leaves_nothing(release, capsys, route, needle):
    release["server"].routes["/up/feats_author.npy"] = route
    code = main(release["args"] + ["--only", "feats_author"])
    line = one_error_line(capsys, code, needle)
    assert "/up/feats_author.npy" in line
    assert tree(release["dest"]) == []


def test_a_checkpoint_with_wrong_keys_is_refused(release, capsys):
    state = VisualAggregator(dim=16, num_layers=2).state_dict()  # one layer too many
    release["server"].routes["/up/agg_ckpt.pth.tar"] = Route(tar_bytes({"agg_ckpt.pth": checkpoint_bytes(state)}))
    code = main(release["args"] + ["--only", "agg_ckpt"])
    one_error_line(capsys, code, "unexpected key mapper.transformer.layers.1")
    assert tree(release["dest"]) == []


def test_an_archive_without_the_checkpoint_is_refused(release, capsys):
    release["server"].routes["/up/agg_ckpt.pth.tar"] = Route(tar_bytes({"README": b"hello"}))
    code = main(release["args"] + ["--only", "agg_ckpt"])
    one_error_line(capsys, code, "expected one agg_ckpt.pth in the archive, found README")
    assert tree(release["dest"]) == []


def test_a_checksum_mismatch_is_refused(release, capsys):
    wrong = json.dumps([{"id": i + 1, "image_count": 0} for i in range(6)]).encode()
    wrong += b" " * (len(release["files"]["json"]) - len(wrong))  # same size, other bytes
    release["server"].routes["/up/cat_info.json"] = Route(wrong)
    code = main(release["args"] + ["--only", "cat_info"])
    one_error_line(capsys, code, "sha256 ")
    assert tree(release["dest"]) == []


def test_an_unwritable_destination_is_reported_before_any_download(release, capsys):
    (release["dest"] / "checkpoints").write_text("a file where a folder should be")
    code = main(release["args"])
    one_error_line(capsys, code, "checkpoints is not a folder")
    assert release["server"].requests == []
    assert tree(release["dest"]) == ["checkpoints"]


def test_a_part_of_another_file_is_resumed_then_downloaded_again_from_the_start(release, capsys):
    """A .part an earlier run left of another version: the resumed file fails its check, so it is fetched whole."""
    dest, server = release["dest"], release["server"]
    part = dest / (ARRAY_PATH + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\x00" * 700)
    assert main(release["args"] + ["--only", "feats_author"]) == 0
    assert "downloading it again from the start" in capsys.readouterr().err
    assert tree(dest) == [ARRAY_PATH] and (dest / ARRAY_PATH).read_bytes() == release["files"]["array"]
    assert server.requests == [("/up/feats_author.npy", "bytes=700-"), ("/up/feats_author.npy", None)]


@pytest.mark.parametrize("leftover", [ARRAY_PATH + ".part", "datasets/metadata/.feats_author.unverified.npy"])
@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_link_or_folder_named_like_a_partial_download_is_refused(release, capsys, tmp_path, leftover, kind):
    """Never written through: a link there would have the download (or the unpacked file) land outside --dest."""
    dest, outside = release["dest"], tmp_path / "outside.npy"
    outside.write_bytes(b"keep")
    path = dest / leftover
    path.parent.mkdir(parents=True)
    path.symlink_to(outside) if kind == "link" else path.mkdir()
    one_error_line(capsys, main(release["args"] + ["--only", "feats_author"]), f"{path}: not a file an earlier")
    assert outside.read_bytes() == b"keep" and release["server"].requests == []
    assert not (dest / ARRAY_PATH).exists()


def test_a_bad_file_already_in_place_is_kept_unless_forced(release, capsys):
    target = release["dest"] / ARRAY_PATH
    target.parent.mkdir(parents=True)
    target.write_bytes(npy_bytes(np.zeros((2, 2), np.float32)))
    code = main(release["args"] + ["--only", "feats_author"])
    one_error_line(capsys, code, "pass --force")
    assert np.load(target).shape == (2, 2)
    assert main(release["args"] + ["--only", "feats_author", "--force"]) == 0
    assert target.read_bytes() == release["files"]["array"]


def test_the_shipped_manifest_names_the_guides_files_and_the_shipped_descriptions_pass(capsys):
    assets = {a.name: a for a in load_manifest()}
    assert {a.path for a in assets.values()} == {
        "checkpoints/visual_aggregator/visual_aggregator_ckpt_4_transformer.pth",
        *(f"datasets/metadata/{name}" for name in [
            "lvis_v1_clip_a+cname.npy", "lvis_v1_train_cat_info.json",
            "lvis_gpt3_text-davinci-002_descriptions_author.json", "lvis_gpt3_text-davinci-002_features_author.npy",
            "lvis_image_exemplar_features_avg_K-005_author.npy", "lvis_image_exemplar_features_agg_K-005_author.npy",
            "lvis_multi-modal_avg_K-005_author.npy", "lvis_multi-modal_agg_K-005_author.npy"])}
    assert all(a.url.startswith("https://") for a in assets.values())
    descriptions = assets["lvis_gpt3_text-davinci-002_descriptions_author"]
    shipped = ROOT / descriptions.path
    assert sha256_of(shipped) == descriptions.sha256
    check_asset_file(shipped, descriptions)
    # the repository's own copy counts as present: no network needed
    assert main(["--dest", str(ROOT), "--only", descriptions.name, "--base-url", "http://127.0.0.1:9"]) == 0
    assert "present" in capsys.readouterr().out


# ---- CLIP weights: open_clip's registry gets a tag for the tiny test model, served from 127.0.0.1


def tiny_clip_tag(monkeypatch, cfg):
    """Register `cfg` as the 'test' weights of the tiny CLIP; return (its --clip spelling, open_clip name)."""
    config = str(tiny_clip_config_path())
    open_clip.add_model_config(config)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny_clip", {"test": cfg})
    return config


@pytest.mark.slow
def test_clip_weights_from_a_url_land_where_open_clip_reads_them(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "served.pt"
    save_random_checkpoint(tiny_clip_config_path(), ckpt, seed=1)
    cache = tmp_path / "clip_cache"
    with FileServer() as server:
        server.routes["/weights/tiny_clip.pt"] = Route(ckpt.read_bytes())
        url = server.url + "/weights/tiny_clip.pt"
        config = tiny_clip_tag(monkeypatch, {"url": url, "hf_hub": ""})
        args = ["--only", "clip", "--clip", config, "--pretrained", "test", "--clip-cache-dir", str(cache)]
        assert main(args) == 0
        assert "fetched" in capsys.readouterr().out
        # open_clip's own lookup finds the file and does not download it again
        requests = len(server.requests)
        assert open_clip.pretrained.download_pretrained_from_url(url, cache_dir=str(cache)) == str(cache / "tiny_clip.pt")
        assert len(server.requests) == requests
    assert (cache / "tiny_clip.pt").read_bytes() == ckpt.read_bytes()


@pytest.fixture
def hub_tag(tmp_path, monkeypatch):
    """The tiny CLIP's 'test' weights as a Hub repo, and a safetensors file of them served as a mirror would."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never the real Hub
    config = tiny_clip_tag(monkeypatch, {"url": "", "hf_hub": "test-org/tiny-clip/"})
    torch.manual_seed(2)
    weights = tmp_path / "open_clip_model.safetensors"
    save_file(open_clip.create_model("tiny_clip").state_dict(), str(weights))
    return config, weights.read_bytes()


@pytest.mark.slow
def test_clip_weights_from_a_mirror_land_in_the_hub_cache_open_clip_reads(tmp_path, hub_tag, capsys):
    config, data = hub_tag
    cache = tmp_path / "hub"
    with FileServer() as server:
        server.routes["/m/clip/test-org/tiny-clip/open_clip_model.safetensors"] = Route(data)
        args = ["--only", "clip", "--clip", config, "--pretrained", "test", "--clip-cache-dir", str(cache),
                "--base-url", server.url + "/m"]
        assert main(args) == 0
        assert "clip/test-org/tiny-clip/open_clip_model.safetensors" in capsys.readouterr().out
    # open_clip's own download function, offline, resolves the tag to the mirrored file
    found = open_clip.pretrained.download_pretrained(open_clip.get_pretrained_cfg("tiny_clip", "test"),
                                                     cache_dir=str(cache))
    assert Path(found).read_bytes() == data
    assert Path(found).is_relative_to(cache / "models--test-org--tiny-clip" / "snapshots")


def test_clip_weights_of_another_model_are_refused(tmp_path, hub_tag, capsys):
    config, _ = hub_tag
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3)}, str(other))
    cache = tmp_path / "hub"
    with FileServer() as server:
        server.routes["/m/clip/test-org/tiny-clip/open_clip_model.safetensors"] = Route(other.read_bytes())
        code = main(["--only", "clip", "--clip", config, "--pretrained", "test", "--clip-cache-dir", str(cache),
                     "--base-url", server.url + "/m"])
    one_error_line(capsys, code, "open_clip_model.safetensors: not a checkpoint of")
    assert not cache.exists()  # the folders made for it are gone too


@pytest.mark.parametrize("content", [b"", b"x/../../../../outside", b"\xff\xfe"], ids=["empty", "path", "binary"])
def test_a_damaged_refs_main_in_the_hub_cache_is_named_and_nothing_is_written(tmp_path, hub_tag, capsys, content):
    """The revision refs/main names becomes a folder name: an empty one filed the weights in snapshots/ (never read)
    and wrote refs/main outside the repository folder, a path led out of the cache, bytes were a traceback."""
    config, data = hub_tag
    cache = tmp_path / "hub"
    ref = cache / "models--test-org--tiny-clip" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_bytes(content)
    with FileServer() as server:
        server.routes["/m/clip/test-org/tiny-clip/open_clip_model.safetensors"] = Route(data)
        code = main(["--only", "clip", "--clip", config, "--pretrained", "test", "--clip-cache-dir", str(cache),
                     "--base-url", server.url + "/m"])
        assert server.requests == []
    one_error_line(capsys, code, f"{ref}: not a commit hash")
    assert tree(tmp_path) == ["hub/models--test-org--tiny-clip/refs/main", "open_clip_model.safetensors"]


def test_the_metadata_readme_points_at_a_section_that_exists():
    pointer = (ROOT / "datasets/metadata/README.md").read_text()
    assert "](../../docs/outputs.md#metadata)" in pointer
    headings = [line for line in (ROOT / "docs/outputs.md").read_text().splitlines() if line.startswith("## ")]
    assert "## Metadata" in headings


class CtrlCBar:
    """The progress of one download; presses Ctrl-C once `after` bytes have arrived."""

    def __init__(self, after):
        self.after, self.seen = after, 0

    def update(self, n):
        self.seen += n
        if self.seen >= self.after:
            raise KeyboardInterrupt

    def close(self):
        pass


def ctrl_c_in(label, after=None):
    """A progress-bar factory that presses Ctrl-C in the download of `label`: after `after` bytes, or before its
    first byte (None)."""
    def factory(name, total, initial):
        if name == label and after is None:
            raise KeyboardInterrupt
        return CtrlCBar(after if name == label else float("inf"))
    return factory


def test_ctrl_c_names_what_is_in_place_and_the_part_kept_and_the_rerun_resumes(release, capsys, monkeypatch):
    dest, server = release["dest"], release["server"]
    monkeypatch.setattr(mmovod.io.downloads, "CHUNK", 500)
    monkeypatch.setattr(mmovod.assets.fetch, "_progress_bar", ctrl_c_in("feats_author.npy", after=500))
    assert main(release["args"]) == 130  # agg_ckpt is fetched first, then feats_author is interrupted
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"download_assets.py: interrupted; fetched and in place: {dest / CKPT_PATH}; 500 bytes of "
        f"{server.url}/up/feats_author.npy are kept in {dest / ARRAY_PATH}.part; run the same command again to "
        "resume the download")
    assert tree(dest) == [CKPT_PATH, ARRAY_PATH + ".part"]
    monkeypatch.undo()
    assert main(release["args"]) == 0
    assert tree(dest) == [CKPT_PATH, JSON_PATH, ARRAY_PATH]
    assert all((dest / path).read_bytes() == release["files"][kind]
               for path, kind in ((CKPT_PATH, "ckpt"), (JSON_PATH, "json"), (ARRAY_PATH, "array")))
    assert ("/up/feats_author.npy", "bytes=500-") in server.requests


def test_ctrl_c_before_any_byte_keeps_nothing(release, capsys, monkeypatch):
    monkeypatch.setattr(mmovod.assets.fetch, "_progress_bar", ctrl_c_in("feats_author.npy"))
    assert main(release["args"] + ["--only", "feats_author"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "download_assets.py: interrupted; no output was written"
    assert tree(release["dest"]) == []


def test_clip_alone_fetches_that_model_only(monkeypatch, capsys):
    """`--clip MODEL` lists (and fetches) those weights and no manifest asset; with `--only` it adds to them."""
    config = tiny_clip_tag(monkeypatch, {"url": "http://127.0.0.1:9/tiny_clip.pt", "hf_hub": ""})
    assert main(["--list", "--clip", config, "--pretrained", "test"]) == 0
    entries = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert entries == [f"clip:{config}:test  [clip]"]
    assert main(["--list", "--clip", config, "--pretrained", "test", "--only", "checkpoints", "clip"]) == 0
    entries = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert len(entries) == 2 and entries[-1] == f"clip:{config}:test  [clip]" and "[checkpoints" in entries[0]
