"""Every tool command the user documentation shows names an existing tool and only flags its parser accepts.

Commands are read from the fenced (non-Python) code blocks and the inline code spans of README.md,
docs/*.md and tools/README.md: `python tools/X.py ...` (also `python3`, `$PY`, `.venv/bin/python`,
`torchrun ... tools/X.py`) and `mmovod X ...`. Each tool's parser comes from its own `get_parser()`.
"""
from __future__ import annotations

import functools
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from mmovod.cli.commands import ALIASES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "tools/README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHONS = {"python", "python3", "$PY", "$(PY)", ".venv/bin/python", "torchrun"}
COMMAND_END = {"|", "||", "&&", ";", ">", ">>", "2>", "<"}
FENCE = re.compile(r"^(```|~~~)(\w*)\n(.*?)^\1", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]*(?:\n[^`\n]*)?)`(?!`)")


def code_lines(text: str) -> list[str]:
    """Command lines of the non-Python fenced blocks (continuations joined, comments dropped) and inline spans."""
    lines = []
    for _, lang, body in FENCE.findall(text):
        if lang == "python":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line)
    outside = FENCE.sub("", text)
    lines += [span.replace("\n", " ") for span in INLINE.findall(outside) if "tools/" in span or span.startswith("mmovod ")]
    return lines


def commands(line: str) -> list[tuple[str, list[str]]]:
    """(tool name, its arguments) for each tool invocation on one shell line."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote: a line of prose, not a command
        return []
    found = []
    for i, word in enumerate(words):
        tool = None
        if word == "mmovod" and i + 1 < len(words) and not words[i + 1].startswith("-") and (i == 0 or words[i - 1] in COMMAND_END):
            tool, start = ALIASES.get(words[i + 1], words[i + 1]).replace("-", "_"), i + 2
        elif re.fullmatch(r"tools/[\w.-]+\.py", word) and i > 0 and (words[i - 1] in PYTHONS or "torchrun" in words[:i]):
            tool, start = Path(word).stem, i + 1
        if tool is None:
            continue
        args = []
        for arg in words[start:]:
            if arg in COMMAND_END:
                break
            args.append(arg)
        found.append((tool, args))
    return found


def flags_of(args: list[str]) -> list[str]:
    """The option strings among the arguments (placeholders such as `[--vocab V]` or `(--a X | --b Y)` unwrapped)."""
    flags = []
    for arg in args:
        arg = arg.strip("[]()")
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", arg):
            flags.append(arg.split("=", 1)[0])
    return flags


@functools.lru_cache(maxsize=None)
def option_strings(tool: str) -> frozenset[str] | None:
    """Every option string `tools/<tool>.py`'s parser accepts, or None when there is no such tool."""
    path = ROOT / "tools" / f"{tool}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"docs_check_{tool}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.get_parser()._option_string_actions)


def problems(page: str, text: str) -> list[str]:
    """One line per documented command that names a missing tool or a flag its tool does not accept."""
    found = []
    for line in code_lines(text):
        for tool, args in commands(line):
            accepted = option_strings(tool)
            if accepted is None:
                found.append(f"{page}: no tool tools/{tool}.py: {line.strip()}")
                continue
            found += [f"{page}: tools/{tool}.py has no flag {flag}: {line.strip()}"
                      for flag in flags_of(args) if flag not in accepted]
    return found


def documented_commands() -> list[tuple[str, str, list[str]]]:
    return [(page.relative_to(ROOT).as_posix(), tool, args)
            for page in PAGES for line in code_lines(page.read_text()) for tool, args in commands(line)]


def test_every_documented_command_names_an_existing_tool_and_flags():
    found = []
    for page in PAGES:
        found += problems(page.relative_to(ROOT).as_posix(), page.read_text())
    assert found == []


def test_the_pages_document_every_tool():
    """The extraction finds commands in each page kind, and every tool appears in tools/README.md."""
    seen = documented_commands()
    assert {page for page, _, _ in seen} >= {"README.md", "tools/README.md", "docs/datasets.md",
                                             "docs/your-own-classes.md", "docs/aggregator-training.md"}
    in_index = {tool for page, tool, _ in seen if page == "tools/README.md"}
    assert in_index == {path.stem for path in (ROOT / "tools").glob("*.py") if path.stem != "__init__"}
    # a multi-line command keeps the flags after its line continuations
    args = next(args for page, tool, args in seen if page == "README.md" and tool == "build_classifiers")
    assert "--clip_model" in args and "--report" in args


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links of a page whose file or heading anchor does not exist."""
    found = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", page.read_text())):
        if re.match(r"\w+:", target):
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            found.append(f"{page.relative_to(root)}: {target}: no such file")
        elif fragment and linked.suffix == ".md":
            headings = {anchor(line.lstrip("#")) for line in FENCE.sub("", linked.read_text()).splitlines()
                        if line.startswith("#")}
            if fragment not in headings:
                found.append(f"{page.relative_to(root)}: {target}: no such heading")
    return found


def test_links_between_pages_resolve(tmp_path):
    pages = [*PAGES, ROOT / "datasets/metadata/README.md", ROOT / "checkpoints/README.md"]
    assert [problem for page in pages for problem in broken_links(page)] == []
    # and the check can fail: a missing heading and a missing file
    (tmp_path / "a.md").write_text("# Title: one\n[ok](#title-one) [bad](#title-two) [gone](b.md)\n")
    assert broken_links(tmp_path / "a.md", tmp_path) == ["a.md: #title-two: no such heading", "a.md: b.md: no such file"]


def test_every_named_source_path_exists():
    """Paths into the code (`mmovod/...`, `tools/...`, `tests/...`, `bench/...`, `scripts/...`) that the pages name exist."""
    named = {(page.relative_to(ROOT).as_posix(), path.rstrip("."))
             for page in PAGES for path in re.findall(r"(?<![\w/.])(?:mmovod|tools|tests|bench|scripts)/[\w./-]*", page.read_text())}
    assert len(named) > 30
    assert sorted(f"{page}: {path}" for page, path in named if not (ROOT / path).exists()) == []


SAMPLE = """Some text with `python tools/remove_lvis_rare.py --ann a.json --no-such-flag` inline.

```
python tools/get_lvis_cat_info.py --ann a.json \\
    --add_freq --made-up-flag 3
$PY tools/no_such_tool.py --ann a.json
mmovod remove_lvis_rare --ann a.json --out=b.json --also-made-up
echo done && python3 tools/sample_exemplars.py -K 5 [--bogus X]
# python tools/remove_lvis_rare.py --commented-out
```

```python
print("python tools/remove_lvis_rare.py --in-python-code")
```
"""


def test_a_made_up_flag_or_tool_is_reported():
    assert problems("sample.md", SAMPLE) == [
        "sample.md: tools/get_lvis_cat_info.py has no flag --made-up-flag: "
        "python tools/get_lvis_cat_info.py --ann a.json      --add_freq --made-up-flag 3",
        "sample.md: no tool tools/no_such_tool.py: $PY tools/no_such_tool.py --ann a.json",
        "sample.md: tools/remove_lvis_rare.py has no flag --also-made-up: "
        "mmovod remove_lvis_rare --ann a.json --out=b.json --also-made-up",
        "sample.md: tools/sample_exemplars.py has no flag --bogus: "
        "echo done && python3 tools/sample_exemplars.py -K 5 [--bogus X]",
        "sample.md: tools/remove_lvis_rare.py has no flag --no-such-flag: "
        "python tools/remove_lvis_rare.py --ann a.json --no-such-flag",
    ]


@pytest.mark.parametrize("line, want", [
    ("OPENAI_API_KEY=... python tools/generate_descriptions.py --ann-path a.json", [("generate_descriptions", ["--ann-path", "a.json"])]),
    ("torchrun --nproc_per_node 8 tools/train_visual_aggregator.py --cache c", [("train_visual_aggregator", ["--cache", "c"])]),
    ("python bench/bench_text_encoder.py --help", []),
    ("python train_net.py --config-file x", []),
    ("from mmovod import ClipSpec", []),
])
def test_which_words_are_tool_commands(line, want):
    assert commands(line) == want
