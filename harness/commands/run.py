"""`milvus-harness run`: one scenario against one target, judged (exit 0 PASS, 1 FAIL, 125 INCONCLUSIVE).

The lifecycle itself is harness/run/lifecycle.py; this is its command line.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.commands.options import add_locust_options, add_run_options, run_options_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from harness.run.lifecycle import RunOptions

EXAMPLES = """examples:
  milvus-harness run                                             # the seed scenario on the newest embedded Milvus
  milvus-harness run --scenario smoke --milvus-version 2.3.5 --memory-limit 4GiB
  MILVUS_USER=loader MILVUS_PASSWORD=... milvus-harness run --target external --uri https://milvus.example:19530 --allow-remote --db-name perf"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario against Milvus and judge it (exit 0 PASS, 1 FAIL, 125 INCONCLUSIVE)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(p)
    add_locust_options(p)
    p.set_defaults(func=lambda args: run(run_options_from_args(args)))


def run(options: RunOptions, console: Console | None = None) -> int:
    """Run, print the verdict and where the report is; returns the run's exit code."""
    from harness.console import make_console, print_result
    from harness.run.lifecycle import run as run_scenario

    console = console or make_console()
    result = run_scenario(options, console=console)
    print_result(console, result)
    return result.exit_code
