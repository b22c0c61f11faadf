"""One name per concept: every tool that takes views accepts --views and --num-augs, every tool that takes an
aggregator --aggregator and --load-path, each pair reaching one setting, with the one spelling in --help."""
import argparse
import importlib

import pytest

from mmovod.cli.commands import COMMANDS
from mmovod.cli.flags import add_aggregator_arg, add_views_arg

PAIRS = {"views": ("--views", "--num-augs", "3"), "aggregator": ("--aggregator", "--load-path", "agg.pth")}


def parsers():
    return {name: importlib.import_module(f"mmovod.cli.commands.{name}").get_parser() for name in COMMANDS}


def takes(parser, dest):
    return any(a.dest == dest and a.help != argparse.SUPPRESS for a in parser._actions)


def check_pair(parser, dest):
    canonical, alias, value = PAIRS[dest]
    assert {canonical, alias} <= set(parser._option_string_actions), f"{canonical}/{alias}"
    one, other = parser._option_string_actions[canonical], parser._option_string_actions[alias]
    assert one.dest == other.dest == dest and other.help == argparse.SUPPRESS
    assert alias not in parser.format_usage() and canonical in parser.format_usage()  # help lists one spelling


@pytest.mark.parametrize("dest", list(PAIRS))
def test_every_tool_taking_the_concept_takes_both_spellings(dest):
    found = {name: parser for name, parser in parsers().items() if takes(parser, dest)}
    expected = {"views": {"build_classifiers", "get_exemplars_tta", "generate_vision_classifier_agg",
                          "cache_clip_features", "eval_classifiers"},
                "aggregator": {"build_classifiers", "generate_vision_classifier_agg", "eval_visual_aggregator"}}[dest]
    assert set(found) == expected
    for parser in found.values():
        check_pair(parser, dest)


def test_the_alias_sets_the_same_value_and_a_required_aggregator_takes_either():
    parser = argparse.ArgumentParser()
    add_views_arg(parser, 5, "views")
    add_aggregator_arg(parser, "checkpoint", required=True)
    assert vars(parser.parse_args(["--num-augs", "3", "--load-path", "a.pth"])) == {"views": 3, "aggregator": "a.pth"}
    assert vars(parser.parse_args(["--aggregator", "b.pth"])) == {"views": 5, "aggregator": "b.pth"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--views", "2"])


def test_the_check_catches_a_tool_without_the_alias():
    parser = argparse.ArgumentParser()
    parser.add_argument("--views", type=int, default=1)
    with pytest.raises(AssertionError, match="--views/--num-augs"):
        check_pair(parser, "views")
