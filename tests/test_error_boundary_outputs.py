"""The error boundary for what tools write and how they stop: one line per error whatever the text an OS
or server gave, a full disk named as such with no new partial outputs, plot text that is never
matplotlib math, temp files of a killed writer removed by the next run, Ctrl-C saying what was kept,
an evaluation that would score nothing, a resume checkpoint without its state, a tar member larger
than the manifest says."""
import errno
import io
import json
import os
import shutil
import signal
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

import mmovod.evaluation.crop_encoding
from mmovod.vocabulary.output_folder import MANIFEST
import mmovod.features.builder
import mmovod.io.arrays
from mmovod.cli.flags import make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.evaluation import eval_report
from mmovod.io.atomic import atomic_open, output_error
from mmovod.io.errors import InputError
from tests.tiers import quick_once
from tests.error_cases import eval_argv, eval_world, write_classifier
from tests.http_server import FileServer, Route
from tools import (build_classifiers, cache_clip_features, download_assets, eval_classifiers, norm_feat_sum_norm,
                   train_visual_aggregator)

RESULTS = [eval_report.RESULTS_JSON, eval_report.RESULTS_MD, eval_report.GROUPS_PNG, eval_report.AP_PNG]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clip):
    return eval_world(tmp_path_factory.mktemp("outputs"), tiny_clip.checkpoint)


def error_line(capsys, code, needle, prog):
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.strip() and "%|" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: ") and needle in lines[0], err
    return lines[0]


# --- every error is one line ----------------------------------------------------------------------

def test_run_tool_puts_every_error_on_one_line(capsys):
    def body(args):
        raise InputError("x.json: the server said\nline two\r\n  line three\n")
    code = run_tool(make_parser("A tool."), body, [])
    assert code == 2
    assert capsys.readouterr().err == "test_error_boundary_outputs.py: error: x.json: the server said line two line three\n"


def test_a_download_error_with_line_breaks_is_one_line(tmp_path, monkeypatch, capsys):
    def urlopen(*args, **kwargs):
        raise urllib.error.URLError("proxy refused:\n<html>\n503 Service Unavailable\n</html>")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "assets": [
        {"name": "x", "group": "metadata", "url": "http://127.0.0.1:9/x.json", "path": "x.json",
         "check": {"kind": "json", "type": "array"}}]}))
    code = download_assets.main(["--manifest", str(manifest), "--dest", str(tmp_path), "--retries", "0"])
    line = error_line(capsys, code, "cannot connect (proxy refused: <html> 503 Service Unavailable </html>)",
                      "download_assets.py")
    assert "http://127.0.0.1:9/x.json" in line
    code = download_assets.main(["--manifest", str(manifest), "--dest", str(tmp_path), "--retries", "1",
                                 "--retry-wait", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2 and "retrying" in err[0] and "after 2 attempts" in err[1], err


# --- a full disk ----------------------------------------------------------------------------------

class FullDisk:
    """Files opened for writing by mmovod's atomic writers (through os.fdopen) take `budget` writes,
    then fail as a full disk does: OSError(ENOSPC) with no text (as a short write reports it)."""

    def __init__(self, monkeypatch, budget):
        self.budget = budget
        real = os.fdopen

        def fdopen(fd, mode="r", *args, **kwargs):
            handle = real(fd, mode, *args, **kwargs)
            return self.wrap(handle) if "w" in mode or "a" in mode else handle
        monkeypatch.setattr(os, "fdopen", fdopen)

    def wrap(self, handle):
        disk = self

        class Handle(io.BufferedIOBase):
            def write(self, data):
                disk.budget -= 1
                if disk.budget < 0:
                    raise OSError(errno.ENOSPC)
                return handle.write(data)

            def fileno(self):
                return handle.fileno()

            def flush(self):
                handle.flush()

            def close(self):
                handle.close()

        return Handle()


def test_disk_full_while_writing_a_classifier_and_its_sidecar(world, tmp_path, monkeypatch, bad_input):
    out = tmp_path / "fused.npy"
    FullDisk(monkeypatch, budget=1)  # the .npy fits, the sidecar does not
    bad_input(norm_feat_sum_norm.main, ["--feat1-path", str(world["text"]), "--feat2-path", str(world["text"]),
                                        "--out-path", str(out)], out, f"{out}.json: cannot write (No space left on device)")


@pytest.mark.slow
def test_disk_full_while_writing_evaluation_results(world, tmp_path, monkeypatch, bad_input):
    out = tmp_path / "eval"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert eval_classifiers.main(eval_argv(world, out, extra=cache)) == 0
    earlier = {name: (out / name).read_bytes() for name in RESULTS}
    (tmp_path / "out").mkdir()
    new = tmp_path / "out" / "eval"
    FullDisk(monkeypatch, budget=2)  # two results fit, the third does not
    bad_input(eval_classifiers.main, eval_argv(world, new, extra=cache), new, "cannot write (No space left on device)")
    FullDisk(monkeypatch, budget=3)
    bad_input(eval_classifiers.main, eval_argv(world, out, extra=cache), out / RESULTS[0],
              "cannot write (No space left on device)", existing=earlier[RESULTS[0]])
    assert {name: (out / name).read_bytes() for name in RESULTS} == earlier


def test_cache_clip_features_on_a_full_disk_names_it_and_the_folder(world, tmp_path, monkeypatch, bad_input):
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    for i in (1, 2):
        shutil.copy(world["root"] / f"{i}.jpg", tree / "a" / f"{i}.jpg")
    cache = tmp_path / "cache"

    def save(handle, array, allow_pickle=False):  # the shard's bytes do not fit
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(mmovod.io.arrays.np, "save", save)
    argv = ["--image-root", str(tree), "--out", str(cache), "--nw", "0",
            "--clip_model", str(world["clip_config"]), "--pretrained", str(world["weights"]), "--device", "cpu"]
    bad_input(cache_clip_features.main, argv, cache / "shard-00000.npy",
              f"shard-00000.npy: cannot write (No space left on device); free space in {cache} or write elsewhere",
              resumable=True)


def test_a_full_disk_reads_the_same_from_every_writer(tmp_path, monkeypatch, capsys):
    """One helper (output_error) words it, for files and folders, and the run wrapper words a full disk met
    outside mmovod's own writers (a library's cache) the same way."""
    full = OSError(errno.ENOSPC)
    assert str(output_error(tmp_path / "x.npy", full)) == \
        f"{tmp_path / 'x.npy'}: cannot write (No space left on device); free space in {tmp_path} or write elsewhere"
    assert str(output_error(tmp_path, full, "cannot create folder")) == \
        f"{tmp_path}: cannot create folder (No space left on device); free space in {tmp_path} or write elsewhere"
    assert str(output_error(tmp_path / "x.npy", OSError(errno.EROFS, "Read-only file system"))) == \
        f"{tmp_path / 'x.npy'}: cannot write (Read-only file system)"

    def body(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "hub" / "model.bin"))
    error_line(capsys, run_tool(make_parser("A tool."), body, []),
               f"hub/model.bin: cannot write (No space left on device); free space in {tmp_path / 'hub'}",
               "test_error_boundary_outputs.py")

    def other(args):
        raise OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError):  # not a full disk: not ours to word
        run_tool(make_parser("A tool."), other, [])


def test_disk_quota_is_named(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EDQUOT)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(InputError, match="x.bin: cannot write \\(Disk quota exceeded\\)"):
        with atomic_open(tmp_path / "x.bin") as handle:
            handle.write(b"data")
    assert list(tmp_path.iterdir()) == []


# --- plot text is literal, and results appear only with their plots -------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["price$.npy", "a$b$c.npy", r"$\frac{1}{0}$.npy", "under_score^{x}.npy"])
def test_dollars_in_classifier_names_are_plotted_literally(world, tmp_path, name):
    path = tmp_path / name
    shutil.copy(world["text"], path)
    shutil.copy(str(world["text"]) + ".json", str(path) + ".json")
    out = tmp_path / "eval"
    assert eval_classifiers.main(eval_argv(world, out, path, world["text"])) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(RESULTS)
    legend = []
    import matplotlib.legend
    real = matplotlib.legend.Legend.__init__

    def spy(self, parent, handles, labels, *args, **kwargs):
        real(self, parent, handles, labels, *args, **kwargs)
        legend.extend((t.get_text(), t._parse_math) for t in self.get_texts())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matplotlib.legend.Legend, "__init__", spy)
        eval_report.plot_groups(json.loads((out / "eval_results.json").read_text())["classifiers"])
    assert (name[:-4], False) in legend


@pytest.mark.slow
def test_a_failing_plot_leaves_no_results(world, tmp_path, monkeypatch):
    out = tmp_path / "eval"

    def broken(results):
        raise ValueError("plot failed")
    monkeypatch.setattr(eval_report, "plot_ap_vs_frequency", broken)
    with pytest.raises(ValueError, match="plot failed"):
        eval_classifiers.main(eval_argv(world, out))
    assert not out.exists() or [p.name for p in out.iterdir() if p.is_file()] == []


# --- an evaluation that would score nothing --------------------------------------------------------

@pytest.mark.slow
def test_a_classifier_sharing_no_category_with_the_annotations_is_refused(world, tmp_path, bad_input):
    other = write_classifier(tmp_path / "other.npy", world["rows"], world["clip"], ids=[101, 102, 103])
    out = tmp_path / "eval"
    bad_input(eval_classifiers.main, eval_argv(world, out, other), out,
              f"{other}: its category_ids are not the categories of --ann")
    named = write_classifier(tmp_path / "named.npy", world["rows"], world["clip"], names=["boat", "kite", "tent"])
    bad_input(eval_classifiers.main, eval_argv(world, out, named), out,
              f"{named}: none of its 3 classes (boat, kite, tent) is a category of --ann")
    assert eval_classifiers.main(eval_argv(world, out)) == 0  # the world's own classifier shares all three


def test_a_classifier_of_categories_without_boxes_is_refused_before_encoding(world, tmp_path, bad_input, monkeypatch):
    """Its categories are in --ann but none has a box there: it would score no crop (it used to exit 0 with
    empty results)."""
    doc = json.loads(world["ann"].read_text())
    doc["categories"].append({"id": 4, "name": "kite", "synonyms": ["kite"], "frequency": "r", "image_count": 0})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(doc))
    unboxed = write_classifier(tmp_path / "kite.npy", world["rows"][:1], world["clip"], ids=[4], names=["kite"])
    monkeypatch.setattr(mmovod.evaluation.crop_encoding, "encode_into_cache", lambda *a, **k: pytest.fail("encoded"))
    out = tmp_path / "eval"
    argv = eval_argv(world, out, unboxed)
    argv[argv.index("--ann") + 1] = str(ann)
    bad_input(eval_classifiers.main, argv, out, f"{unboxed}: its one class (kite) has no evaluated box in --ann")


# --- temp files of a killed writer ------------------------------------------------------------------

def killed_while_writing(path):
    """A child process that is SIGKILLed inside atomic_open(path), as a build killed mid-write."""
    pid = os.fork()
    if pid == 0:
        with atomic_open(path) as handle:
            handle.write(b"half")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    left = list(path.parent.glob(f".{path.name}.*"))
    assert len(left) == 1  # what a killed writer leaves
    return left[0]


def test_a_killed_writers_temp_file_is_removed_by_the_next_run(world, tmp_path):
    out = tmp_path / "fused.npy"
    stale = killed_while_writing(out)
    live = tmp_path / f".{out.name}.{os.getpid()}.keep.tmp"  # a writer that is still running: kept
    live.write_bytes(b"")
    argv = ["--feat1-path", str(world["text"]), "--feat2-path", str(world["text"]), "--out-path", str(out)]
    assert norm_feat_sum_norm.main(argv) == 0
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, f"{out.name}.json", live.name])


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_after_the_next_build(world, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("cone\nhard hat\n")
    out = tmp_path / "built"
    out.mkdir()
    stale = killed_while_writing(out / "text.npy")
    argv = ["--vocab", str(vocab), "--out-dir", str(out), "--clip_model", str(world["clip_config"]),
            "--pretrained", str(world["weights"]), "--device", "cpu"]
    assert build_classifiers.main(argv) == 0
    assert not stale.exists() and not [p for p in out.rglob(".*") if p.name != MANIFEST]  # the build's own manifest


# --- Ctrl-C of a resumable cache --------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_of_cache_clip_features_says_what_is_kept_and_resumes(world, tmp_path, monkeypatch, capsys):
    tree = tmp_path / "tree"
    for c in ("a", "b"):
        (tree / c).mkdir(parents=True)
        for i in (1, 2):
            shutil.copy(world["root"] / f"{i}.jpg", tree / c / f"{i}.jpg")
    cache = tmp_path / "cache"
    argv = ["--image-root", str(tree), "--out", str(cache), "--nw", "0", "--min-images", "1", "--shard-size", "2",
            "--clip_model", str(world["clip_config"]), "--pretrained", str(world["weights"]), "--device", "cpu"]
    real = mmovod.features.builder.encode_items
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) in (1, 3):  # in the first shard of the first run, in the second shard of the second
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(mmovod.features.builder, "encode_items", interrupted)
    assert cache_clip_features.main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"cache_clip_features.py: interrupted; 0 finished shards of 2 are kept in {cache}; "
        "run the same command again to resume from there")
    assert not list(cache.glob("shard-*"))
    assert cache_clip_features.main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"cache_clip_features.py: interrupted; 1 finished shard of 2 is kept in {cache}; "
                       "run the same command again to resume from there"), err
    assert sorted(p.name for p in cache.glob("shard-*")) == ["shard-00000.npy"]
    monkeypatch.setattr(mmovod.features.builder, "encode_items", real)
    assert cache_clip_features.main(argv) == 0
    assert sorted(p.name for p in cache.glob("shard-*")) == ["shard-00000.npy", "shard-00001.npy"]


# --- a resume checkpoint without its state -----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["--cache", str(world["cache"]), "--out", str(run), "--steps", "2", "--batch-classes", "2", "--k-max", "2",
            "--num-layers", "1", "--device", "cpu", "--checkpoint-every", "1"]
    assert train_visual_aggregator.main(argv) == 0
    return run / "checkpoint-0000002.pth", argv


RESUME_EDITS = [  # (case, edit of the checkpoint dict, needle)
    ("no-scheduler", lambda s: s.pop("scheduler"), "holds no 'scheduler' (the scheduler state)"),
    ("no-rng", lambda s: s.pop("rng"), "holds no 'rng'"),
    ("no-step", lambda s: s.pop("step"), "holds no 'step'"),
    ("no-state-dict", lambda s: s.pop("state_dict"), "holds no 'state_dict'"),
    ("scheduler-not-a-dict", lambda s: s.update(scheduler=[1]), "'scheduler' is not the scheduler state"),
    ("optimizer-without-groups", lambda s: s.update(optimizer={"state": {}}), "'optimizer' is not the optimizer state"),
    ("step-a-string", lambda s: s.update(step="2"), "'step' is not a step count"),
    ("rng-of-floats", lambda s: s.update(rng={"torch": torch.zeros(3)}), "'rng' is not the random-number generator"),
    ("wrong-weights", lambda s: s["state_dict"].update({k: torch.zeros(1) for k in list(s["state_dict"])[:1]}),
     "cannot resume from it"),
]


@pytest.mark.parametrize("case, edit, needle", quick_once(RESUME_EDITS, [c[0] for c in RESUME_EDITS]))
def test_resume_checkpoints_are_validated(trained, tmp_path, capsys, case, edit, needle):
    checkpoint, argv = trained
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parent, run)
    state = torch.load(run / checkpoint.name, weights_only=True)
    edit(state)
    torch.save(state, run / checkpoint.name)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    argv = [*argv[:3], str(run), *argv[4:], "--resume", "latest", "--steps", "3"]
    line = error_line(capsys, train_visual_aggregator.main(argv), needle, "train_visual_aggregator.py")
    assert str(run / checkpoint.name) in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# --- a tar member larger than the manifest says ------------------------------------------------------

def tar_with(name, data):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_tar_member_is_refused_before_unpacking_when_larger_than_the_manifest_says(tmp_path, monkeypatch, capsys):
    extracted = []
    real = tarfile.TarFile.extractfile
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, m: extracted.append(m) or real(self, m))
    with FileServer() as server:
        server.routes["/agg.pth.tar"] = Route(tar_with("agg.pth", bytes(5000)))
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"version": 1, "assets": [
            {"name": "agg", "group": "checkpoints", "url": server.url + "/agg.pth.tar", "path": "agg.pth", "size": 100,
             "check": {"kind": "aggregator_checkpoint", "num_layers": 1, "dim": 16}, "unpack": "tar"}]}))
        (tmp_path / "dest").mkdir()
        code = download_assets.main(["--manifest", str(manifest), "--dest", str(tmp_path / "dest"), "--retry-wait", "0"])
    error_line(capsys, code, "agg.pth in the archive is 5000 bytes, more than the 100 expected; not unpacked",
               "download_assets.py")
    assert extracted == [] and list((tmp_path / "dest").iterdir()) == []


@pytest.mark.slow
def test_good_outputs_still_appear(world, tmp_path):
    """The checks above refuse only what is wrong: a plain evaluation writes its four results."""
    out = tmp_path / "eval"
    assert eval_classifiers.main(eval_argv(world, out)) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(RESULTS)
    assert np.isclose(json.loads((out / "eval_results.json").read_text())["classifiers"][0]["overall"]["top1"] * 6 % 1, 0)
