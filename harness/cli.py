"""Argument parsing and dispatch only; every command lives in its own module under harness/commands/.

`main(argv)` is the one error boundary: a HarnessError becomes one line on stderr and its
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from harness import commands, milvus_client, software_versions
from harness.errors import ExitCode, HarnessError, Interrupted, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prints "milvus-harness: error: "; a subcommand names itself after that.
        command = self.prog.removeprefix("milvus-harness").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def build_parser() -> _Parser:
    """The `milvus-harness` parser with every command's flags."""
    parser = _Parser(prog="milvus-harness", description=(
        "Load-test real Milvus, reproduce memory blow-ups (OOM kills, stalls), judge each run "
        "PASS / FAIL / INCONCLUSIVE, and bisect the Milvus version that brought or fixed one."))
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in commands.ALL:
        command.register(sub)
    _verbose_everywhere(sub)
    return parser


VERBOSE_HELP = "show subprocess output and debug logs"


def version_line() -> str:
    """`milvus-harness 0.1.0 (pymilvus 2.6.17, locust 2.47.0, grpcio 1.85.3)`."""
    versions = software_versions()
    harness = versions.pop("milvus-harness")
    return f"milvus-harness {harness} (" + ", ".join(f"{name} {v or 'not installed'}" for name, v in versions.items()) + ")"


def _verbose_everywhere(sub: argparse._SubParsersAction) -> None:
    """-v also after a (sub)command: `milvus-harness run -v`. SUPPRESS keeps a subcommand's
    default from overwriting a -v given before it."""
    for parser in sub.choices.values():
        parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _verbose_everywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `milvus-harness` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not args.verbose:
            # pymilvus logs every failed RPC at ERROR; during an OOM that is expected noise.
            milvus_client.quiet_pymilvus()
        return int(args.func(args))
    except HarnessError as exc:
        print(f"milvus-harness: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Interrupted as exc:
        print(f"milvus-harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("milvus-harness: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
