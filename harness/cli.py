"""Argument parsing and dispatch only; every command lives in its own module under harness/commands/.

`main(argv)` is the one error boundary: a HarnessError becomes one line on stderr and its
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from harness import __version__, commands, milvus_client
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
    parser.add_argument("--version", action="version", version=f"milvus-harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show subprocess output and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in commands.ALL:
        command.register(sub)
    return parser


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
