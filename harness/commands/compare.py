"""`milvus-harness compare RUN_A RUN_B`: two finished runs side by side, as `asv compare` does.

The comparison is harness/compare/two_runs.py; the table is console.print_comparison.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  milvus-harness compare reports/20261129-164530-seed-2.3.4 reports/20261129-170112-seed-2.3.5
  milvus-harness compare reports/RUN-A reports/RUN-B --factor 1.25   # only moves past 25 % count"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="two finished runs side by side with ratios "
                                       "(exit 1 when a figure got worse past --factor, else 0)",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", metavar="RUN_A", help="the baseline run directory")
    p.add_argument("run_b", metavar="RUN_B", help="the run directory compared against it")
    p.add_argument("--factor", type=float, default=1.1,
                   help="a ratio past which a figure counts as worse or better (default 1.1: 10 %%)")
    p.set_defaults(func=lambda args: run(Path(args.run_a), Path(args.run_b), args.factor))


def run(run_a: Path, run_b: Path, factor: float = 1.1) -> int:
    """Print B's figures against A's; 1 when one got worse past `factor`, else 0."""
    from harness.compare.two_runs import compare_runs
    from harness.console import make_console, print_comparison

    comparison = compare_runs(run_a, run_b, factor=factor)
    print_comparison(make_console(), comparison)
    return comparison.exit_code
