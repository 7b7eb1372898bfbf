"""`milvus-harness bisect`: the first bad version (or with --find-fix the first good one)
(exit 0 found, 125 undecided). The search is harness/compare/bisect_search.py, the command's
flow harness/compare/bisect_command.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands.options import add_run_options, run_options_from_args

if TYPE_CHECKING:
    from harness.run.lifecycle import RunOptions

EXAMPLES = """examples:
  milvus-harness bisect --good 2.2.16 --bad 2.3.5
  milvus-harness bisect --good 2.3.5 --bad 2.2.16 --find-fix --memory-limit 3GiB
  milvus-harness bisect --target kind --versions-file tags.txt --good v2.6.10 --bad v2.6.15"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bisect", help="find the first bad version (or with --find-fix the first good one) "
                                      "(exit 0 found, 125 undecided)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--good", required=True, metavar="V", help="a version that PASSes (older, unless --find-fix)")
    p.add_argument("--bad", required=True, metavar="V", help="a version that FAILs (newer, unless --find-fix)")
    p.add_argument("--find-fix", action="store_true", help="the older version is bad: find the first good one")
    p.add_argument("--versions-file", metavar="FILE",
                   help="the ordered versions, one per line, oldest first (kind: image tags, required; "
                        "embedded: default every published version)")
    p.add_argument("--id", dest="bisect_id", metavar="ID", help="name the page reports/bisect-<ID> (default: the time)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="embedded: do not install the next candidates while a version runs "
                        "(keeps installs off the CPU during latency-sensitive runs)")
    add_run_options(p)
    p.set_defaults(func=lambda args: run(
        run_options_from_args(args), args.good, args.bad, find_fix=args.find_fix,
        versions_file=Path(args.versions_file) if args.versions_file else None,
        prefetch=not args.no_prefetch, bisect_id=args.bisect_id))


def run(options: RunOptions, good: str, bad: str, *, find_fix: bool = False, versions_file: Path | None = None,
        prefetch: bool = True, bisect_id: str | None = None) -> int:
    """Bisect between `good` and `bad`, print what it found; returns its exit code."""
    from harness.compare.bisect_command import run_bisect_command
    from harness.compare.bisect_search import describe
    from harness.console import make_console

    console = make_console()
    result = run_bisect_command(options, good, bad, console, find_fix=find_fix, versions_file=versions_file,
                                prefetch=prefetch, bisect_id=bisect_id)
    for line in describe(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return result.exit_code
