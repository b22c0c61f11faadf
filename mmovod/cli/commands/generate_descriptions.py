r"""Ask an LLM to describe every class of a vocabulary (the descriptions behind the description classifier).

The vocabulary is an LVIS/COCO annotation file (its categories, ascending id) or your own class
list (a text file, one class per line with optional synonyms after commas, or a JSON/YAML list; see
README "Your own classes"). For each class the model is asked `Describe what a <class> looks like.`
for 10 samples (temperature 0.99, at most 50 tokens, stop at '.'). Empty, one-word and duplicate
answers are re-sampled and reported per class (<output>.report.json). Writes
`{"<class>": [sentences]}` keyed by the class's first synonym with '_' -> ' ', to --output-path
with `{}` replaced by the model name.

Works with the OpenAI API and any server speaking its wire format (vLLM, Ollama, LiteLLM and other
gateways: --base-url). The API key is read from OPENAI_API_KEY only (never from files or flags; a
local server that needs no key works without it). Requests run concurrently, 429 / 5xx / timeouts
are retried with exponential backoff, and finished classes are cached in
<output>.<model>-<api>.partial.jsonl: an interrupted run resumes where it stopped when re-run with the
same command.

Example:
  export OPENAI_API_KEY=...   # not needed for a keyless local server
  python tools/generate_descriptions.py --ann-path datasets/lvis/lvis_v1_val.json \
      --openai-model gpt-3.5-turbo-instruct
  (writes datasets/metadata/lvis_gpt3_gpt-3.5-turbo-instruct_descriptions_own.json)
  python tools/generate_descriptions.py --ann-path datasets/lvis/lvis_v1_val.json \
      --openai-model llama3.1 --base-url http://127.0.0.1:11434/v1 --limit 5
  python tools/generate_descriptions.py --vocab my_classes.txt --openai-model gpt-4o-mini \
      --output-path my_descriptions_{}.json
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mmovod.cli.flags import hidden_alias, make_parser
from mmovod.cli.tool_runner import run_tool
from mmovod.io.wording import plural

REPORT_LINES = 20


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--ann-path", "--vocab", dest="ann_path", default="datasets/lvis/lvis_v1_val.json",
                        help="the classes: an LVIS/COCO-format annotation JSON, or a vocabulary file (text, JSON or "
                             "YAML class list)")
    parser.add_argument("--out-path", default="datasets/metadata/lvis_gpt3_{}_descriptions_own.json",
                        help="output JSON; '{}' is replaced by the model name ('/' -> '_'); its folder must exist")
    hidden_alias(parser, "--output-path", "out_path")
    parser.add_argument("--openai-model", default="gpt-3.5-turbo-instruct",
                        help="model name on the server (text-davinci-002/003 are retired at OpenAI)")
    server = parser.add_argument_group("server")
    server.add_argument("--base-url", default=None,
                        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
                             "(default: $OPENAI_BASE_URL, else the OpenAI API)")
    server.add_argument("--api", choices=["chat", "completions"], default=None,
                        help="endpoint (default: completions for instruct / GPT-3 style names such as "
                             "gpt-3.5-turbo-instruct or text-davinci-002, else chat)")
    server.add_argument("--workers", type=int, default=4, help="concurrent requests")
    server.add_argument("--timeout", type=float, default=60.0, help="seconds before a request is abandoned and retried")
    server.add_argument("--max-retries", type=int, default=6, help="retries per request on 429 / 5xx / timeouts")
    server.add_argument("--backoff", type=float, default=1.0,
                        help="first retry wait in seconds, doubled each retry (a Retry-After header wins)")
    parser.add_argument("--limit", type=int, default=None,
                        help="describe only the first N classes (to try a model or server); the cache is kept "
                             "so a full run reuses them")
    return parser


def run(args: argparse.Namespace, prog: str) -> int:
    from mmovod.descriptions.client import ServiceError
    from mmovod.vocabulary.descriptions import describe_vocabulary

    try:
        result = describe_vocabulary(args.ann_path, args.out_path, args.openai_model, api=args.api,
                                     base_url=args.base_url, workers=args.workers, timeout=args.timeout,
                                     max_retries=args.max_retries, backoff=args.backoff, limit=args.limit)
    except ServiceError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {result.classes} classes x {result.samples} descriptions to {result.path} "
          f"({result.retried} requests retried)")
    if result.rejected:
        print(f"re-sampled empty, one-word or duplicate answers of {plural(len(result.rejected), 'class', 'classes')} "
              f"(all listed in {result.report_path}):")
        for name, counts in list(result.rejected.items())[:REPORT_LINES]:
            print(f"  {name}: " + ", ".join(f"{reason} {n}" for reason, n in counts.items()))
        if len(result.rejected) > REPORT_LINES:
            print(f"  ... and {len(result.rejected) - REPORT_LINES} more")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = get_parser()  # run_tool sets its prog: `generate_descriptions.py`, or `mmovod generate_descriptions`
    return run_tool(parser, lambda args: run(args, parser.prog), argv, prog)
