"""tools/train_visual_aggregator.py on a generated feature cache: what Ctrl-C keeps and says."""
import pytest
import torch

import mmovod.aggregator.training as training
from tools import train_visual_aggregator

from tests.aggregator_toy import toy_cache

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def run_flags(tmp_path):
    cache = toy_cache(tmp_path / "cache", n_classes=8, per_class=6)
    return ["--cache", str(cache), "--steps", "5", "--batch-classes", "4", "--k-max", "2", "--warmup-steps", "2",
            "--num-layers", "1", "--device", "cpu", "--checkpoint-every", "2"]


def interrupt_at_step(monkeypatch, step):
    """Ctrl-C in the loss of training step `step` (1-based), as if pressed while it ran."""
    real, calls = training.query_loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(training, "query_loss", loss)


def last_err(capsys):
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.slow
def test_ctrl_c_names_the_checkpoint_kept_and_resume_latest_finishes_as_an_uninterrupted_run(
        run_flags, tmp_path, monkeypatch, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert train_visual_aggregator.main([*run_flags, "--out", str(full)]) == 0
    interrupt_at_step(monkeypatch, 4)
    assert train_visual_aggregator.main([*run_flags, "--out", str(part)]) == 130
    assert last_err(capsys) == (
        f"train_visual_aggregator.py: interrupted; checkpoint-0000002.pth (step 2 of 5) and metrics.jsonl (to step 3) "
        f"are kept in {part}; run the same command with --resume latest to continue from there")
    assert sorted(p.name for p in part.iterdir()) == ["checkpoint-0000002.pth", "metrics.jsonl"]
    monkeypatch.undo()
    assert train_visual_aggregator.main([*run_flags, "--out", str(part), "--resume", "latest"]) == 0
    a = torch.load(full / "visual_aggregator.pth", weights_only=True)["state_dict"]
    b = torch.load(part / "visual_aggregator.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_before_a_checkpoint_says_the_metrics_are_kept_and_a_rerun_starts_over(
        run_flags, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupt_at_step(monkeypatch, 2)
    assert train_visual_aggregator.main([*run_flags, "--out", str(out)]) == 130
    assert last_err(capsys) == (f"train_visual_aggregator.py: interrupted; {out / 'metrics.jsonl'} (steps 1 to 1) is "
                                "kept, but no checkpoint to resume from; run the same command again to start over")
    monkeypatch.undo()
    assert train_visual_aggregator.main([*run_flags, "--out", str(out)]) == 0


def test_ctrl_c_in_the_first_step_keeps_nothing(run_flags, tmp_path, monkeypatch, capsys):
    interrupt_at_step(monkeypatch, 1)
    assert train_visual_aggregator.main([*run_flags, "--out", str(tmp_path / "run")]) == 130
    assert last_err(capsys) == "train_visual_aggregator.py: interrupted; no output was written"
    assert not list((tmp_path / "run").glob("checkpoint-*"))
