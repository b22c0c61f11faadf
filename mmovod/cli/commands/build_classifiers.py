r"""Your own classes, end to end: a class list and a few photos of each -> every classifier a detector loads.

Reads a vocabulary (a text file with one class per line and optional synonyms after commas, a
JSON/YAML class list, or an LVIS/COCO annotation file) and exemplar photos (--exemplars DIR with
DIR/<class name>/*.jpg, or the boxes of a COCO file with --exemplar-ann, or the exemplars listed in
the vocabulary), loads CLIP once and writes into --out-dir, rows in vocabulary order, each with a
.npy.json sidecar: text.npy (class-name prompts, Detic's recipe), descriptions.npy (when there are
descriptions), vision-average.npy, vision-aggregated.npy (with --aggregator), multi-modal-average.npy,
multi-modal-aggregated.npy and text-ensemble.npy (class-name prompts averaged with the descriptions),
plus vocabulary.json (what went into each row) and exemplars.json.
Classes without exemplars get multi-modal rows from their text (moved by the mean text-to-photo gap
of the classes with photos) and are listed. Re-running reuses every classifier whose inputs and flags
did not change (also those written before a Ctrl-C). Judges every classifier on your own photos
(leave-one-out, when that costs no extra encoding, or with --judge), hands the best-judged one to the
detector (--prefer overrides) and prints its Detic config lines at the end.

Example:
  python tools/build_classifiers.py --vocab my_classes.txt --exemplars my_photos/ --out-dir my_classifiers \
      --aggregator checkpoints/visual_aggregator/visual_aggregator_ckpt_4_transformer.pth --report --judge
  python tools/check_classifier.py my_classifiers/multi-modal-aggregated.npy --clip_model ViT-B/32
"""
from __future__ import annotations

import argparse
from typing import Sequence

from mmovod.classifiers.kinds import built, exportable
from mmovod.classifiers.text_inputs import PROMPTS, PromptSpec
from mmovod.cli.flags import (add_aggregator_arg, add_clip_args, add_exemplar_view_args, clip_spec_from_args, make_parser,
                              view_spec_from_args)
from mmovod.cli.tool_runner import run_tool
from mmovod.handoff.formats import FORMATS
from mmovod.prep.exemplar_sampling import DEFAULT_SEED
from mmovod.io.wording import plural


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--vocab", required=True,
                        help="vocabulary: text (one class per line, 'name, synonym, ...'; '#' comments), JSON/YAML "
                             "list of classes (name, synonyms, descriptions, exemplars), or LVIS/COCO annotation JSON")
    parser.add_argument("--out-dir", required=True, help="output folder (created if its parent exists)")
    ex = parser.add_argument_group("exemplars")
    ex.add_argument("--exemplars", default=None, metavar="DIR",
                    help="DIR/<class name>/*.{jpg,jpeg,png,...}: whole-image exemplars; folder names match class "
                         "names or synonyms ignoring case, spaces and underscores")
    ex.add_argument("--exemplar-ann", default=None, metavar="FILE",
                    help="COCO-format file whose boxes are the exemplars (image file_names relative to --exemplars)")
    ex.add_argument("-K", type=int, default=None,
                    help="keep at most K exemplars per class (area-weighted seeded draw, as the LVIS recipe; "
                         "default: all)")
    ex.add_argument("--sample-seed", type=int, default=DEFAULT_SEED, help="seed of the -K draw")
    ex.add_argument("--require-exemplars", action="store_true",
                    help="a class without exemplars is an error (default: its multi-modal rows are text only)")
    text = parser.add_argument_group("class-name text classifier (as dump_clip_features.py)")
    text.add_argument("--prompt", choices=sorted(PROMPTS), default="a",
                      help="a -> 'a <name>', none -> '<name>', photo -> 'a photo of a <name>', "
                           "scene -> 'a photo of a <name> in the scene'")
    text.add_argument("--fix_space", action="store_true", help="replace '_' with ' ' in class names")
    text.add_argument("--use_underscore", action="store_true", help="replace ' ' with '_' in class names")
    text.add_argument("--avg_synonyms", action="store_true", help="average the prompts of every synonym of a class")
    desc = parser.add_argument_group("description classifier")
    desc.add_argument("--descriptions", default=None, metavar="FILE|generate",
                      help="JSON {class: [sentences]} for the classes whose vocabulary entry has none, or 'generate' "
                           "to ask an LLM (OPENAI_API_KEY; cached and resumable, written to OUT/descriptions_<model>.json)"
                           "; default: the vocabulary's own descriptions, if any")
    desc.add_argument("--openai-model", default="gpt-3.5-turbo-instruct",
                      help="with --descriptions generate: the model (e.g. gpt-4o-mini with --api chat)")
    desc.add_argument("--base-url", default=None, help="with --descriptions generate: an OpenAI-compatible endpoint")
    desc.add_argument("--api", choices=["chat", "completions"], default=None,
                      help="with --descriptions generate: the endpoint (default: by model name)")
    agg = parser.add_argument_group("aggregated vision classifier (as generate_vision_classifier_agg.py)")
    add_aggregator_arg(agg, "visual aggregator checkpoint; without it no aggregated classifier")
    agg.add_argument("--num-layers", type=int, default=4, help="the aggregator's transformer layers")
    agg.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                     help="TTA views for the aggregator (generate_vision_classifier_agg.py needs --tta for this; "
                          "with whole-image exemplars its views are then shared with the averaged classifier)")
    add_exemplar_view_args(parser, workers=2)
    add_clip_args(parser, batch_help="image views per forward pass (default: %(default)s); sentences are batched "
                                      "on their own, 256 per pass on CUDA and 32 on CPU")
    out = parser.add_argument_group("outputs")
    out.add_argument("--export", nargs="+", default=[], choices=exportable(), metavar="KIND",
                     help="also hand these classifiers to a detector in OUT/export/ (--export-format); KIND is one of "
                          f"{', '.join(exportable())} (the aggregated kinds only with an aggregator trained for CLIP's "
                          "space, as mmovod's are, unless the format is detic, which takes any)")
    out.add_argument("--export-format", choices=FORMATS, default="yolo-world",
                     help="yolo-world: OUT/export/KIND.npy, L2-normalised float32 rows (YOLO-World's embedding_path), "
                          "KIND.classes.txt and KIND.class_texts.json; ultralytics: KIND.pt (txt_feats and names); detic: KIND.npy as "
                          "Detic reads it, KIND.classes.txt and KIND.detic.txt (docs/handoff.md)")
    out.add_argument("--report", action="store_true",
                     help="write OUT/report/index.html with a contact sheet per class (crops and TTA views), sources, "
                          "classes without exemplars and each class's nearest classes")
    out.add_argument("--judge", action=argparse.BooleanOptionalAction, default=None,
                     help="judge every classifier from your own photos, no labelled set needed: leave-one-out over "
                          "the exemplars (each photo's raw CLIP embedding classified against rows made without it, "
                          "every class's from one photo fewer), written to OUT/leave-one-out.json and the report, and "
                          "hand off the best-judged kind; keeps the view embeddings in OUT/exemplar-embeddings.npz so "
                          "a re-run judges without encoding again. Unset: judge whenever that encodes no image "
                          "beyond what the build encodes anyway")
    out.add_argument("--prefer", default=None, choices=built(), metavar="KIND",
                     help=f"hand this kind to the detector (its Detic lines) whatever the judgement; KIND is one of "
                          f"{', '.join(built())}")
    return parser


def run(args: argparse.Namespace) -> None:
    from mmovod.classifiers.kinds import SPACE_NOTES
    from mmovod.clip.crops import TTA_CONTEXT
    from mmovod.readers.vocabulary_file import read_vocabulary
    from mmovod.vocabulary.build import build_classifiers
    from mmovod.vocabulary.descriptions import generated_descriptions, resolve_descriptions
    from mmovod.vocabulary.exemplar_folders import collect_exemplars, unmatched_names
    from mmovod.vocabulary.judging import summary_lines
    from mmovod.vocabulary.output_folder import claim, prepare_out_dir
    from mmovod.vocabulary.settings import AggregatorSettings, BuildInputs, BuildSettings

    vocab = read_vocabulary(args.vocab)
    claim(prepare_out_dir(args.out_dir, create=False))  # a folder holding others' files: refused before any work
    exemplars = collect_exemplars(vocab, args.exemplars, args.exemplar_ann, args.K, args.sample_seed, args.skip_bad,
                                  max(1, args.workers))
    text = PromptSpec(args.prompt, args.fix_space, args.use_underscore, args.avg_synonyms)
    settings = BuildSettings(
        clip=clip_spec_from_args(args),
        text=text,
        views=view_spec_from_args(args, context=TTA_CONTEXT),
        aggregator=AggregatorSettings(args.aggregator, args.num_layers, args.tta) if args.aggregator else None,
        require_exemplars=args.require_exemplars, export=tuple(args.export),
        export_format=args.export_format, report=args.report,
        judge=args.judge, prefer=args.prefer)
    descriptions_file = args.descriptions
    if descriptions_file == "generate":
        prepare_out_dir(args.out_dir)
        descriptions_file = generated_descriptions(vocab, args.out_dir, args.openai_model, api=args.api,
                                                   base_url=args.base_url)
    descriptions, source = resolve_descriptions(vocab, descriptions_file, text)
    result = build_classifiers(BuildInputs(vocab, exemplars, descriptions, source), settings, args.out_dir,
                               args.command_line)
    print(f"{plural(len(vocab), 'class', 'classes')} from {vocab.path} ({vocab.format}); "
          f"computed: {', '.join(result.computed) or 'nothing'}; reused: {', '.join(result.reused) or 'nothing'}")
    for name, path in result.files.items():
        space = result.spaces[name]
        print(f"  {name}: {path}" + ("" if space == "clip" else f"; {SPACE_NOTES[space]}"))
    if result.removed:
        print(f"removed what the earlier build in {result.out_dir} wrote and this one did not: {', '.join(result.removed)}")
    with_synonyms = [c.name for c in vocab.classes if set(c.synonyms) - {c.name}]
    if with_synonyms and not args.avg_synonyms:
        named = ", ".join(with_synonyms[:5]) + (" ..." if len(with_synonyms) > 5 else "")
        print(f"synonyms of {plural(len(with_synonyms), 'class', 'classes')} ({named}) may name exemplar folders and "
              "evaluation categories but are not in the text prompts (Detic's recipe: the class name only); "
              "--avg_synonyms averages the prompts of every synonym")
    if exemplars.unmatched:
        print(f"exemplar folders matching no class: {unmatched_names(exemplars.unmatched, vocab)}")
    if exemplars.ignored:
        more = exemplars.ignored_files - len(exemplars.ignored)
        print(f"ignored (not images in a class folder {args.exemplars}/<class name>/): {', '.join(exemplars.ignored)}"
              + (f" and {more} more" if more else ""))
    if result.without_exemplars:
        print(f"classes without exemplars (multi-modal rows from their text, its vision direction estimated from "
              f"the classes with exemplars): {', '.join(result.without_exemplars)}")
    for kind, path in result.exports.items():
        print(f"{kind} for {args.export_format}: {path} (docs/handoff.md: how the detector loads it)")
    for note in result.export_notes:
        print(f"note: {note}")
    if result.judged is not None:
        print("\n".join(summary_lines(result.judged)))
    elif result.not_judged:
        print(f"not judged: {result.not_judged}")
    if result.report:
        print(f"report: {result.report}")
    print(f"hand-off: {result.handoff}, {result.handoff_reason}")
    swap = ("; the second line swaps it in at test time, to evaluate or run a trained model on YOUR_DATASET, the "
            "dataset you registered with these classes" if len(result.detic_lines) > 1 else
            "; its rows are not in CLIP's space, so it cannot be swapped into a detector trained on text rows")
    print(f"Detic, with {result.handoff} (train with the first line{swap}):")
    for line in result.detic_lines:
        print(f"  {line}")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return run_tool(get_parser(), run, argv, prog)
