"""What a run records about its software, and the command line's help and -v: `--version` and
run.json name the harness, pymilvus, Locust and grpcio versions (as installed, read here
independently); every command's --help ends with two or three examples that parse; -v works
before and after the (sub)command."""

from __future__ import annotations

import argparse
import shlex
from importlib import metadata

import pytest

from harness import __version__
from harness.cli import build_parser, main
from harness.commands.options import run_options_from_args as args_to_run_options
from harness.run.lifecycle import RunOptions, run_inputs
from harness.scenario import model as scenarios
from harness.targets.protocol import TargetOptions

INSTALLED = {name: metadata.version(name) for name in ("pymilvus", "locust", "grpcio")}


def test_version_names_the_harness_and_the_client_stack(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"milvus-harness {__version__} (")
    for name, version in INSTALLED.items():
        assert f"{name} {version}" in line


def test_run_json_records_the_versions():
    scenario = scenarios.load("smoke")
    inputs = run_inputs("r", RunOptions(scenario="smoke"), scenario, TargetOptions(), "2.3.5", 0.0)
    assert inputs["versions"] == {"milvus-harness": __version__, **INSTALLED}


def test_run_json_records_profile_every():
    scenario = scenarios.load("smoke")
    assert run_inputs("r", RunOptions(scenario="smoke"), scenario, TargetOptions(), None, 0.0)["profile_every_s"] is None
    args = build_parser().parse_args(["ui", "--scenario", "smoke", "--profile-every", "5m"])
    options = args_to_run_options(args)
    assert options.profile_every == 300.0
    assert run_inputs("r", options, scenario, TargetOptions(), None, 0.0)["profile_every_s"] == 300.0


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(argv prefix, parser) of every command and sub-command, e.g. (("cluster", "up"), ...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_every_command_is_covered():
    assert {argv[0] for argv, _ in COMMANDS} >= {"run", "ui", "report", "scenarios", "versions", "cluster",
                                                 "watch", "matrix", "bisect", "compare"}


@pytest.mark.parametrize("argv,parser", COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_help_ends_with_two_or_three_examples_that_parse(argv, parser):
    help_text = parser.format_help().rstrip()
    head, sep, block = help_text.rpartition("\nexamples:\n")
    assert sep, f"`milvus-harness {' '.join(argv)} --help` has no examples block at its end"
    examples = block.splitlines()
    assert 2 <= len(examples) <= 3, examples
    for example in examples:
        words = shlex.split(example, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words.pop(0)  # MILVUS_USER=... before the command
        assert words[:2] == ["milvus-harness", argv[0]], example
        build_parser().parse_args(words[1:])  # a bad example raises UsageError here


@pytest.mark.parametrize("argv,verbose", [
    (["scenarios"], False), (["-v", "scenarios"], True), (["scenarios", "-v"], True),
    (["run", "--verbose", "--scenario", "smoke"], True), (["cluster", "status", "-v"], True),
    (["-v", "compare", "a", "b"], True),
])
def test_verbose_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


def test_verbose_after_the_command_runs_it(capsys):
    assert main(["scenarios", "-v"]) == 0
    assert "smoke" in capsys.readouterr().out
