import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from mmovod.aggregator.objective import exemplar_rows, query_embeddings, query_loss
from mmovod.aggregator.episodes import EpisodeSampler
from mmovod.aggregator.heldout_retrieval import retrieval_accuracy, select_classes
from mmovod.aggregator.model import CLIP_SPACE_OBJECTIVE, VisualAggregator, aggregate, build_model, output_space
from mmovod.aggregator.train_config import TrainConfig, lr_factor
from mmovod.features.feature_cache import FeatureCache
from tools import eval_visual_aggregator, train_visual_aggregator

from tests.aggregator_toy import toy_cache

pytestmark = pytest.mark.usefixtures("one_thread")

SPREAD = 1.5
TINY = ["--num-layers", "1", "--device", "cpu", "--checkpoint-every", "0"]


def read_metrics(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_query_loss_matches_a_naive_loop():
    """Cross-entropy of raw unit queries against the normalised rows of every class, at the logit scale."""
    g = torch.Generator().manual_seed(0)
    rows, queries = torch.randn(3, 8, generator=g), torch.randn(3, 2, 8, generator=g)  # 2 queries of each class
    queries = queries / queries.norm(dim=-1, keepdim=True)
    scale = 7.0
    rn = [r / r.norm() for r in rows]
    total, count = 0.0, 0
    for b in range(3):
        for q in queries[b]:
            logits = [scale * float(q @ r) for r in rn]
            total += -logits[b] + math.log(sum(math.exp(v) for v in logits))
            count += 1
    assert float(query_loss(rows, queries, scale)) == pytest.approx(total / count, rel=1e-5)


def test_queries_are_raw_view_means_and_rows_see_only_the_exemplars():
    """The queries never pass through the aggregator: each is the unit mean of one image's views; the rows
    depend on the exemplar tokens only (changing a query token leaves them unchanged)."""
    torch.manual_seed(0)
    model = VisualAggregator(dim=16, num_layers=1).eval()
    x = torch.randn(3, 2 * 2 + 3 * 2, 16)  # 2 exemplars and 3 queries of 2 views each
    q = query_embeddings(x, 4, 3)
    want = x[:, 4:].reshape(3, 3, 2, 16).mean(dim=2)
    torch.testing.assert_close(q, want / want.norm(dim=-1, keepdim=True))
    with torch.inference_mode():
        rows = exemplar_rows(model, x, 4)
        x2 = x.clone()
        x2[:, 4:] += 5
        torch.testing.assert_close(exemplar_rows(model, x2, 4), rows)
        torch.testing.assert_close(rows[1], aggregate(model, x[1:2, :4])[0], rtol=1e-5, atol=1e-5)


def test_warmup_then_cosine_by_hand():
    cfg = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.0)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("pairing", ["independent", "same"])
def test_episodes_are_two_disjoint_sets_per_class_and_a_function_of_the_step(tmp_path, pairing):
    cache = FeatureCache(toy_cache(tmp_path / "c", n_classes=10, per_class=12, views=2))
    cfg = TrainConfig(batch_classes=6, k_min=2, k_max=6, seed=3, k_pairing=pairing, view_sampling="one")
    sampler = EpisodeSampler(cache, np.arange(10), cfg)
    ks = set()
    for step in range(30):
        ep = sampler.sample(step)
        ks.add((ep.k_a, ep.k_b))
        assert ep.rows.shape == (6, ep.k_a + ep.k_b) and 2 <= ep.k_a <= 6 and 2 <= ep.k_b <= 6
        assert ep.split == ep.k_a
        labels = np.searchsorted(cache.class_offsets, ep.rows, side="right") - 1
        assert (labels == labels[:, :1]).all()
        assert len(set(labels[:, 0])) == 6
        for row in ep.rows:
            assert len(set(row)) == ep.k_a + ep.k_b
        assert ((ep.views >= 0) & (ep.views < 2)).all()
        again = sampler.sample(step)
        assert np.array_equal(again.rows, ep.rows) and np.array_equal(again.views, ep.views)
    assert len(ks) > 1
    assert all(a == b for a, b in ks) == (pairing == "same")


def test_all_views_sampling_puts_every_view_of_an_image_in_its_set(tmp_path):
    cache = FeatureCache(toy_cache(tmp_path / "c", n_classes=10, per_class=12, views=3))
    one = EpisodeSampler(cache, np.arange(10), TrainConfig(batch_classes=4, k_max=5, view_sampling="one")).sample(7)
    ep = EpisodeSampler(cache, np.arange(10), TrainConfig(batch_classes=4, k_max=5, view_sampling="all")).sample(7)
    assert ep.split == 3 * ep.k_a and ep.rows.shape == (4, 3 * (ep.k_a + ep.k_b))
    assert np.array_equal(ep.rows[:, ::3], one.rows)
    assert np.array_equal(ep.views[0], np.tile(np.arange(3), ep.k_a + ep.k_b))
    assert np.array_equal(ep.rows[:, 1::3], one.rows) and np.array_equal(ep.rows[:, 2::3], one.rows)


@pytest.mark.slow
def test_gaussian_clusters_train_below_the_start_loss_and_retrieve_above_chance(tmp_path, capsys):
    train_cache = toy_cache(tmp_path / "train", seed=0, n_classes=400, per_class=12, spread=SPREAD, shard_size=2000)
    held_out = toy_cache(tmp_path / "held", seed=1, n_classes=20, per_class=24, prefix="h", spread=SPREAD)
    out = tmp_path / "run"
    code = train_visual_aggregator.main([
        "--cache", str(train_cache), "--out", str(out), "--steps", "300", "--batch-classes", "32",
        "--k-min", "1", "--k-max", "5", "--lr", "2e-3", "--warmup-steps", "15", "--weight-decay", "0", *TINY,
    ])
    assert code == 0
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl")]
    assert len(losses) == 300
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])
    cache = FeatureCache(held_out)
    ids = select_classes(cache, None, 6, strict=False)
    trained = VisualAggregator.from_checkpoint(out / "visual_aggregator.pth", num_layers=1)
    assert torch.load(out / "visual_aggregator.pth", weights_only=True)["objective"] == CLIP_SPACE_OBJECTIVE
    assert output_space(out / "visual_aggregator.pth") == "clip"
    untrained = build_model(TrainConfig(num_layers=1), 32)
    cpu = torch.device("cpu")
    ours = retrieval_accuracy(cache, trained, ids, [1, 5], 10, 2, 0, cpu)
    before = retrieval_accuracy(cache, untrained, ids, [1, 5], 10, 2, 0, cpu)
    assert ours.chance == pytest.approx(0.05)
    assert ours.aggregator[5] > 5 * ours.chance
    assert ours.aggregator[5] > before.aggregator[5] + 0.15
    assert ours.aggregator[5] > ours.aggregator[1]
    report = tmp_path / "eval.json"
    capsys.readouterr()
    assert eval_visual_aggregator.main([
        "--cache", str(held_out), "--load-path", str(out / "visual_aggregator.pth"), "--num-layers", "1",
        "--out-path", str(report), "--ks", "1", "5", "--queries", "10", "--trials", "2", "--device", "cpu",
    ]) == 0
    doc = orjson.loads(report.read_bytes())
    assert doc["by_k"]["5"]["aggregator"] == pytest.approx(ours.aggregator[5])
    assert doc["by_k"]["1"]["average"] == pytest.approx(ours.average[1])
    assert "aggregator" in capsys.readouterr().out


def test_resume_after_step_n_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    cache = toy_cache(tmp_path / "c", n_classes=12, per_class=10)
    flags = ["--cache", str(cache), "--steps", "6", "--batch-classes", "8", "--k-max", "4", "--warmup-steps", "2",
             "--num-layers", "1", "--device", "cpu", "--checkpoint-every", "3"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert train_visual_aggregator.main([*flags, "--out", str(full)]) == 0
    part.mkdir()
    (part / "checkpoint-0000003.pth").write_bytes((full / "checkpoint-0000003.pth").read_bytes())
    (part / "metrics.jsonl").write_bytes(b"".join(line + b"\n" for line in (full / "metrics.jsonl").read_bytes().splitlines()[:5]))
    assert train_visual_aggregator.main([*flags, "--out", str(part), "--resume", "latest"]) == 0
    a = torch.load(full / "visual_aggregator.pth", weights_only=True)["state_dict"]
    b = torch.load(part / "visual_aggregator.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    full_losses = [r["loss"] for r in read_metrics(full / "metrics.jsonl")]
    part_losses = [r["loss"] for r in read_metrics(part / "metrics.jsonl")]
    assert part_losses == full_losses
    sa = torch.load(full / "checkpoint-0000006.pth", weights_only=True)
    sb = torch.load(part / "checkpoint-0000006.pth", weights_only=True)
    assert sa["scheduler"] == sb["scheduler"] and sa["step"] == sb["step"] == 6
    torch.testing.assert_close(sa["optimizer"]["state"], sb["optimizer"]["state"], rtol=0, atol=0)


def test_final_checkpoint_loads_with_the_inference_loader(tmp_path):
    cache = toy_cache(tmp_path / "c", n_classes=8, per_class=6, dim=16)
    out = tmp_path / "run"
    assert train_visual_aggregator.main(["--cache", str(cache), "--out", str(out), "--steps", "2", "--batch-classes", "4",
                                         "--k-max", "3", "--num-layers", "2", "--device", "cpu"]) == 0
    saved = torch.load(out / "checkpoint-0000002.pth", weights_only=True)
    model = VisualAggregator.from_checkpoint(out / "visual_aggregator.pth", num_layers=2)
    assert model.dim == 16
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key])
    assert saved["config"]["num_layers"] == 2 and saved["clip"]["clip_model"] == "toy-clip"


@pytest.mark.parametrize("case", ["missing", "clip", "strict", "batch", "corrupt"])
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, capsys, case):
    cache = toy_cache(tmp_path / "c", n_classes=6, per_class=8, sizes=[8, 8, 8, 8, 8, 3])
    args = ["--cache", str(cache), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-classes", "4", "--k-max", "4", *TINY]
    expected = {
        "missing": "feature cache folder not found",
        "clip": "made with CLIP toy-clip (random weights), but --clip_model ViT-B/32 was requested",
        "strict": "1 of 6 classes have fewer than 8 images",
        "batch": "only 5 classes have at least 8 images, fewer than --batch-classes 6",
        "corrupt": "shard-00000.npy: corrupt shard",
    }[case]
    if case == "missing":
        args[1] = str(tmp_path / "nope")
    elif case == "clip":
        args += ["--clip_model", "ViT-B/32"]
    elif case == "strict":
        args += ["--strict"]
    elif case == "batch":
        args[7] = "6"
    else:
        (cache / "shard-00000.npy").write_bytes(b"\x93NUMPY garbage")
    capsys.readouterr()
    assert train_visual_aggregator.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error:" in err[-1] and expected in err[-1], err
    assert not any("error:" in line or "Traceback" in line for line in err[:-1]), err
    assert not (tmp_path / "run" / "visual_aggregator.pth").exists()


@pytest.mark.slow
def test_ddp_on_two_gloo_ranks_matches_one_process(tmp_path):
    """torchrun with 2 CPU ranks (each takes half of the global batch, embeddings all-gathered for
    the loss) reaches the weights of a single process on the same global batch."""
    root = Path(__file__).resolve().parents[2]
    cache = toy_cache(tmp_path / "c", n_classes=12, per_class=10)
    flags = ["--cache", str(cache), "--steps", "4", "--batch-classes", "8", "--k-max", "4", "--warmup-steps", "1",
             "--lr", "1e-3", "--num-layers", "1", "--device", "cpu", "--checkpoint-every", "0"]
    assert train_visual_aggregator.main([*flags, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(root / "tools" / "train_visual_aggregator.py"), *flags, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = torch.load(tmp_path / "one" / "visual_aggregator.pth", weights_only=True)["state_dict"]
    two = torch.load(tmp_path / "two" / "visual_aggregator.pth", weights_only=True)["state_dict"]
    start = build_model(TrainConfig(num_layers=1), 32).state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(one[k], start[k]) for k in one)
    losses_one = [r["loss"] for r in read_metrics(tmp_path / "one" / "metrics.jsonl")]
    losses_two = [r["loss"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl")]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)


@pytest.mark.parametrize("case", ["other-clip", "strict", "no-checkpoint", "unknown-class"])
def test_eval_bad_input_exits_2_with_one_line_and_no_output(tmp_path, capsys, case):
    from mmovod.features.feature_cache import write_array_cache

    from tests.aggregator_toy import gaussian_classes

    train_cache = toy_cache(tmp_path / "t", n_classes=6, per_class=8)
    run = tmp_path / "run"
    assert train_visual_aggregator.main(["--cache", str(train_cache), "--out", str(run), "--steps", "1", "--batch-classes", "4",
                                         "--k-max", "2", *TINY]) == 0
    held = toy_cache(tmp_path / "h", n_classes=3, per_class=8, sizes=[8, 8, 3], prefix="h")
    out = tmp_path / "eval.json"
    args = ["--cache", str(held), "--load-path", str(run / "visual_aggregator.pth"), "--num-layers", "1",
            "--out-path", str(out), "--ks", "1", "5", "--device", "cpu"]
    expected = {
        "other-clip": "cache made with CLIP other-clip (random weights), but --clip_model toy-clip was requested",
        "strict": "1 class has fewer than 6 images (max K + 1), e.g. h002 (3) (--strict)",
        "no-checkpoint": "checkpoint not found",
        "unknown-class": "1 requested classes are not in the cache (first: zebra)",
    }[case]
    if case == "other-clip":
        other = {"clip_model": "other-clip", "pretrained": None, "embed_dim": 32}
        args[1] = str(write_array_cache(tmp_path / "o", gaussian_classes(0, 3, 8), other, 100))
    elif case == "strict":
        args.append("--strict")
    elif case == "no-checkpoint":
        args[3] = str(tmp_path / "missing.pth")
    else:
        names = tmp_path / "classes.txt"
        names.write_text("h000\nzebra\n")
        args += ["--classes", str(names)]
    capsys.readouterr()
    assert eval_visual_aggregator.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error:" in err[-1] and expected in err[-1], err
    assert not any("error:" in line or "Traceback" in line for line in err[:-1]), err
    assert not out.exists()
