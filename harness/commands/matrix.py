"""`milvus-harness matrix`: a scenario on every version x --vary value, compared on one page
(exit 1 any FAIL, 125 any INCONCLUSIVE, else 0). The runs and the table are harness/compare/matrix.py."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.commands.options import add_run_options, run_options_from_args
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.run.lifecycle import RunOptions

EXAMPLES = """examples:
  milvus-harness matrix --milvus-versions 2.3.4,2.3.5 --scenario smoke
  milvus-harness matrix --vary shards=1,4,16 --vary memory_limit=2GiB,4GiB --id shards"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="run a scenario on every version x --vary value and compare "
                                      "(exit 1 any FAIL, 125 any INCONCLUSIVE, else 0)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--milvus-versions", metavar="V1,V2,...",
                   help="embedded: published versions, or `all`; kind: image tags (default: --milvus-version "
                        "or the newest)")
    p.add_argument("--vary", metavar="KEY=V1,V2,...", action="append", default=[],
                   help="a scenario field, rules.<rule> or memory_limit and its values, repeatable, "
                        "e.g. --vary shards=1,4,16 --vary partitions=1,16")
    p.add_argument("--id", dest="matrix_id", metavar="ID", help="name the page reports/matrix-<ID> (default: the time)")
    add_run_options(p)
    p.set_defaults(func=lambda args: run(_options(args), args.vary, args.milvus_versions,
                                         args.matrix_id))


def _options(args: argparse.Namespace) -> RunOptions:
    from harness.compare.matrix import parse_axes

    parse_axes(args.vary)  # a bad --vary is refused before the other options are read
    if args.milvus_versions and args.milvus_version:
        raise UsageError("give either --milvus-versions (a matrix) or --milvus-version, not both")
    return run_options_from_args(args)


def run(options: RunOptions, vary: list[str], milvus_versions: str | None = None,
        matrix_id: str | None = None) -> int:
    """Run the matrix, print its table; returns the matrix's exit code."""
    from harness.compare.matrix import parse_axes, resolve_versions, run_matrix
    from harness.console import make_console, print_matrix

    axes = parse_axes(vary)
    target = options.target
    if milvus_versions:
        versions = resolve_versions(milvus_versions, target.target)
    elif target.milvus_version:
        versions = [target.milvus_version]
    elif target.target == "embedded":
        from harness.targets.install import resolve_version

        versions = [resolve_version(None)]
    else:
        raise UsageError(f"matrix on {target.target} needs --milvus-versions (image tags)")
    console = make_console()
    result = run_matrix(versions, axes, options, console, matrix_id=matrix_id)
    print_matrix(console, result, list(axes))
    return result.exit_code
