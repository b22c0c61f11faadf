"""generate_descriptions against a real HTTP server on 127.0.0.1 speaking the OpenAI wire format."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmovod.descriptions.description_cache import cache_path_for
from mmovod.descriptions.client import DescriptionClient
from mmovod.descriptions.generate import output_path_for
from mmovod.descriptions.recipe import clean_sample, default_api, describe_prompt
from tools import generate_descriptions

from tests.fakes import KEY, fake_text

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = [c for c in json.loads((ROOT / "tests/data/lvis_v1_categories.json").read_text()) if c["id"] <= 20 or c["name"] == "bull"]


@pytest.fixture
def ann(tmp_path):
    path = tmp_path / "lvis_v1_val.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": CATEGORIES[::-1]}))
    return path


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def expected(n_classes, model_n=10):
    names = [c["synonyms"][0].replace("_", " ") for c in sorted(CATEGORIES, key=lambda c: c["id"])][:n_classes]
    return {name: [clean_sample(fake_text(describe_prompt(name), model_n, i)) for i in range(10)] for name in names}


def argv(server, ann, out, *extra):
    return ["--ann-path", str(ann), "--output-path", str(out), "--base-url", server.base_url, "--backoff", "0", *extra]


def test_prompt_and_sample_rules():
    assert describe_prompt("aerosol can") == "Describe what an aerosol can looks like."
    assert describe_prompt("horned cow") == "Describe what a horned cow looks like."
    assert clean_sample("\n\nA red can\n\nwith a nozzle") == "A red canwith a nozzle."
    assert default_api("gpt-3.5-turbo-instruct") == "completions" and default_api("text-davinci-002") == "completions"
    assert default_api("gpt-4o-mini") == "chat"
    assert output_path_for("m/lvis_gpt3_{}_descriptions_own.json", "meta/llama3") == Path(
        "m/lvis_gpt3_meta_llama3_descriptions_own.json")


def test_completions_run_writes_ascending_ids_and_sends_the_original_recipe(server, ann, tmp_path):
    out = tmp_path / "lvis_gpt3_{}_descriptions_own.json"
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "gpt-test-instruct")) == 0
    written = tmp_path / "lvis_gpt3_gpt-test-instruct_descriptions_own.json"
    got = json.loads(written.read_text())
    assert got == expected(len(CATEGORIES)) and list(got) == list(expected(len(CATEGORIES)))
    assert got["aerosol can"][0] == "An aerosol can has shape 0 of 10."
    assert "a horned cow" in got["horned cow"][0].lower()
    path, body = server.requests[0]
    assert path == "/v1/completions"
    assert body["prompt"].startswith("Describe what ") and body["n"] == 10 and body["temperature"] == 0.99
    assert body["max_tokens"] == 50 and body["stop"] == "."
    assert len(server.requests) == len(CATEGORIES)
    assert not cache_path_for(written, "gpt-test-instruct", "completions").exists()


@pytest.mark.slow
def test_chat_api_with_429_500_timeouts_and_a_server_that_caps_n(server, ann, tmp_path, capsys):
    server.failures = [429, 500, "timeout", 503]
    server.max_n = 4  # 10 samples need three requests: 4 + 4 + 2
    out = tmp_path / "chat.json"
    args = argv(server, ann, out, "--openai-model", "chat-test", "--limit", "3", "--workers", "2", "--timeout", "0.5")
    assert generate_descriptions.main(args) == 0
    got = json.loads(out.read_text())
    names = list(expected(3))
    assert list(got) == names
    for name in names:
        prompt = describe_prompt(name)
        # the server answers 4 of the 10, then 4 of the 6 left, then the last 2
        want = [fake_text(prompt, 10, i) for i in range(4)] + [fake_text(prompt, 6, i) for i in range(4)] + [
            fake_text(prompt, 2, i) for i in range(2)]
        assert got[name] == [clean_sample(t) for t in want]
    assert {p for p, _ in server.requests} == {"/v1/chat/completions"}
    assert len(server.requests) == 3 * 3 + 4
    assert "retried=4" in capsys.readouterr().err
    assert cache_path_for(out, "chat-test", "chat").exists()  # --limit keeps the cache for the full run


@pytest.mark.slow
def test_killed_run_resumes_and_equals_an_uninterrupted_run(server, ann, tmp_path):
    reference = tmp_path / "reference.json"
    assert generate_descriptions.main(argv(server, ann, reference, "--openai-model", "gpt-test-instruct")) == 0
    out = tmp_path / "resumed.json"
    cache = cache_path_for(out, "gpt-test-instruct", "completions")
    server.requests.clear()
    server.answered, server.hold_after = 0, 3  # the 4th request hangs: the run is killed while waiting on it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools/generate_descriptions.py"),
                             *argv(server, ann, out, "--openai-model", "gpt-test-instruct", "--workers", "1")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not cache.exists() or cache.read_text().count("\n") < 4):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    server.hold_after = None
    server.release.set()
    finished = cache.read_text().count("\n") - 1
    assert finished == 3 and not out.exists()
    with open(cache, "ab") as handle:  # as if killed in the middle of a write
        handle.write(b'{"class": "torn')
    before = len(server.requests)
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "gpt-test-instruct")) == 0
    assert json.loads(out.read_text()) == json.loads(reference.read_text())
    assert len(server.requests) - before == len(CATEGORIES) - finished
    assert not cache.exists()


def _fails(capsys, args, out, code=2):
    assert generate_descriptions.main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "error:" in err[-1] and sum("error:" in line for line in err) == 1
    assert not out.exists()
    return err[-1]


@pytest.mark.slow
def test_unknown_model_bad_key_and_missing_key_are_one_line_errors(server, ann, tmp_path, capsys, monkeypatch):
    out = tmp_path / "x_{}.json"
    line = _fails(capsys, argv(server, ann, out, "--openai-model", "text-davinci-003"), tmp_path / "x_text-davinci-003.json")
    assert "does not know model 'text-davinci-003'" in line and "gpt-4o-mini" in line
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-secret")
    line = _fails(capsys, argv(server, ann, out, "--openai-model", "chat-test"), tmp_path / "x_chat-test.json")
    assert "rejected the API key" in line and "sk-wrong-secret" not in line
    monkeypatch.delenv("OPENAI_API_KEY")
    line = _fails(capsys, ["--ann-path", str(ann), "--output-path", str(out), "--openai-model", "chat-test"],
                  tmp_path / "x_chat-test.json")
    assert "OPENAI_API_KEY is not set" in line


def test_persistent_server_errors_stop_with_exit_1_and_keep_finished_classes(server, ann, tmp_path, capsys):
    out = tmp_path / "x.json"
    server.failures = [None] * 2 + [500] * 50
    args = argv(server, ann, out, "--openai-model", "chat-test", "--workers", "1", "--max-retries", "2")
    line = _fails(capsys, args, out, code=1)
    assert line.startswith("generate_descriptions.py: error: ")
    assert "HTTP 500 from the server after 3 attempts" in line and "re-run" in line
    assert cache_path_for(out, "chat-test", "chat").read_text().count("\n") == 3  # settings + the two classes that succeeded
    assert generate_descriptions.main(args, prog="mmovod generate_descriptions") == 1  # the same error, named as typed
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("mmovod generate_descriptions: error: HTTP 500")


def test_a_server_that_ignores_max_tokens_is_one_line_and_writes_nothing(server, ann, tmp_path, capsys):
    out = tmp_path / "x.json"
    args = argv(server, ann, out, "--openai-model", "chat-test", "--workers", "1")
    fits = "A red can " * 199  # 1990 characters: what 50 tokens can spell
    server.answers = [[fits] + [f"A can of kind {i} with a nozzle" for i in range(9)]]
    assert generate_descriptions.main([*args, "--limit", "1"]) == 0
    assert json.loads(out.read_text())["aerosol can"][0] == clean_sample(fits)
    out.unlink()
    server.answers = [["A red can with a nozzle " * 40000] * 10]  # about 1 MB per sample
    line = _fails(capsys, args, out, code=2)
    assert "a sample of 960000 characters, far more than max_tokens=50 allows" in line


def test_bad_inputs(server, tmp_path, capsys):
    no_cats = tmp_path / "no_cats.json"
    no_cats.write_text(json.dumps({"images": []}))
    out = tmp_path / "x.json"
    assert "no 'categories' key" in _fails(capsys, argv(server, no_cats, out, "--openai-model", "chat-test"), out)
    missing = tmp_path / "missing" / "x.json"
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"categories": CATEGORIES[:2]}))
    assert "does not exist" in _fails(capsys, argv(server, ann, missing, "--openai-model", "chat-test"), missing)
    assert not server.requests


def test_base_url_from_the_environment_and_explicit_api(server, ann, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    out = tmp_path / "x.json"
    args = ["--ann-path", str(ann), "--output-path", str(out), "--openai-model", "chat-test", "--api", "completions",
            "--limit", "2"]
    assert generate_descriptions.main(args) == 0
    assert [p for p, _ in server.requests] == ["/v1/completions"] * 2
    assert list(json.loads(out.read_text())) == list(expected(2))


GOOD_AND_BAD = ["", ".", "Spray", "A red can", "a red  CAN", "It has a nozzle", "Metal body here", "Three more words",
                "Four more words yes", "Five words are here now"]


def test_empty_one_word_and_duplicate_answers_are_resampled_and_reported(server, ann, tmp_path, capsys):
    server.answers = [GOOD_AND_BAD]
    out = tmp_path / "x.json"
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "chat-test", "--limit", "1",
                                           "--workers", "1")) == 0
    name = list(expected(1))[0]
    prompt = describe_prompt(name)
    good = [s for s in GOOD_AND_BAD if s not in ("", ".", "Spray", "a red  CAN")]
    assert json.loads(out.read_text()) == {name: [clean_sample(t) for t in good + [fake_text(prompt, 4, i) for i in range(4)]]}
    assert [body["n"] for _, body in server.requests] == [10, 4]
    report = {name: {"empty": 2, "one word": 1, "duplicate": 1}}
    assert json.loads((tmp_path / "x.json.report.json").read_text()) == {"rejected_samples_per_class": report}
    assert f"  {name}: empty 2, one word 1, duplicate 1" in capsys.readouterr().out
    # resuming from the cache keeps the report
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "chat-test", "--limit", "1")) == 0
    assert json.loads((tmp_path / "x.json.report.json").read_text()) == {"rejected_samples_per_class": report}


def test_a_class_that_stays_short_keeps_its_good_samples_and_one_with_none_fails(server, ann, tmp_path, capsys):
    server.answers = [["A good one here"] + [""] * 9] + [[""] * 9] * 5
    out = tmp_path / "x.json"
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "chat-test", "--limit", "1")) == 0
    name = list(expected(1))[0]
    assert json.loads(out.read_text()) == {name: ["A good one here."]}
    assert json.loads((tmp_path / "x.json.report.json").read_text())["rejected_samples_per_class"] == {
        name: {"empty": 54, "missing": 9}}
    assert len(server.requests) == 6  # the first answer and 5 re-samples
    server.requests.clear()
    server.answers = [["one"] * 10] * 6
    out = tmp_path / "y.json"
    line = _fails(capsys, argv(server, ann, out, "--openai-model", "chat-test", "--limit", "1"), out, code=1)
    assert "no usable description of 'aerosol can'" in line and len(server.requests) == 6


@pytest.mark.parametrize("suffix,text", [(".txt", "hard hat, safety helmet\n# comment\nbus_stop\n"),
                                         (".yaml", "- name: hard hat\n  synonyms: [safety helmet]\n- bus_stop\n")])
def test_own_vocabulary_files(server, tmp_path, suffix, text):
    vocab = tmp_path / f"classes{suffix}"
    vocab.write_text(text)
    out = tmp_path / "own_{}.json"
    args = ["--vocab", str(vocab), "--output-path", str(out), "--base-url", server.base_url, "--openai-model",
            "gpt-test-instruct"]
    assert generate_descriptions.main(args) == 0
    got = json.loads((tmp_path / "own_gpt-test-instruct.json").read_text())
    assert got == {name: [clean_sample(fake_text(describe_prompt(name), 10, i)) for i in range(10)]
                   for name in ("hard hat", "bus stop")}


def ctrl_c_at_class(monkeypatch, number):
    """Ctrl-C while class `number` (1-based, in asking order) is asked; returns the real `describe`."""
    real, asked = DescriptionClient.describe, []

    def describe(self, name):
        asked.append(name)
        if len(asked) == number:
            raise KeyboardInterrupt
        return real(self, name)
    monkeypatch.setattr(DescriptionClient, "describe", describe)
    return real


@pytest.mark.slow
def test_ctrl_c_names_the_classes_kept_and_the_rerun_asks_only_for_the_others(server, ann, tmp_path, capsys,
                                                                              monkeypatch):
    reference = tmp_path / "reference.json"
    assert generate_descriptions.main(argv(server, ann, reference, "--openai-model", "gpt-test-instruct")) == 0
    out = tmp_path / "out.json"
    args = argv(server, ann, out, "--openai-model", "gpt-test-instruct", "--workers", "1")
    cache = cache_path_for(out, "gpt-test-instruct", "completions")
    real = ctrl_c_at_class(monkeypatch, 4)
    assert generate_descriptions.main(args) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    # The one worker may finish class 5 before the main thread sees class 4's interrupt; whatever the
    # count, the message, the cache and the rerun must agree on it.
    kept = re.fullmatch(
        rf"generate_descriptions\.py: interrupted; (\d+) of {len(CATEGORIES)} classes are kept in "
        rf"{re.escape(str(cache))}; run the same command again to ask only for the others", last)
    assert kept, last
    kept = int(kept.group(1))
    assert kept >= 3  # the three classes asked before the interrupt are never lost
    assert cache.read_text().count("\n") == 1 + kept and not out.exists()  # the settings line, then a class a line
    monkeypatch.setattr(DescriptionClient, "describe", real)
    before = len(server.requests)
    assert generate_descriptions.main(args) == 0
    assert len(server.requests) - before == len(CATEGORIES) - kept
    assert json.loads(out.read_text()) == json.loads(reference.read_text())


def test_ctrl_c_before_a_class_is_finished_keeps_nothing(server, ann, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.json"
    ctrl_c_at_class(monkeypatch, 1)
    assert generate_descriptions.main(argv(server, ann, out, "--openai-model", "gpt-test-instruct", "--workers", "1")) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "generate_descriptions.py: interrupted; no output was written"
    assert list(tmp_path.iterdir()) == [tmp_path / "lvis_v1_val.json"]
