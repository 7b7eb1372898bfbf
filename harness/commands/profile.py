"""`milvus-harness profile`: the top allocation sites of a run's heap profiles, or the
difference between two captures or two runs (a bad tag against its fix after a bisect)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

BY_CHOICES = ("function", "package")
EXAMPLES = """examples:
  milvus-harness profile reports/20261129-164530-seed-2.3.5                 # captures and top sites
  milvus-harness profile reports/RUN --diff standalone-50 standalone-95 --by package
  milvus-harness profile --diff reports/BAD-RUN reports/FIXED-RUN --top 20  # a bad tag against its fix"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="top allocation sites of a run's heap profiles, or the difference of two",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="a run directory (with profiles/*.pb.gz)")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"),
                   help="compare two captures: each a .pb.gz file, a run directory (its last capture before "
                        "the first death) or a capture name of RUN_DIR such as standalone-50")
    p.add_argument("--by", choices=BY_CHOICES, default="function",
                   help="aggregate in-use bytes by allocating function or by Milvus package (default function)")
    p.add_argument("--top", type=int, default=15, metavar="N", help="sites to list (default 15)")
    p.set_defaults(func=lambda args: run(Path(args.run_dir) if args.run_dir else None, args.diff, args.by, args.top))


def run(run_dir: Path | None, diff: list[str] | None, by: str = "function", top: int = 15,
        console: Console | None = None) -> int:
    """Print the captures and top sites of `run_dir`, or the growth from capture A to B."""
    from harness.console import make_console, print_captures, print_sites
    from harness.profiles import sites, store

    console = console or make_console()
    if not 1 <= top <= 1000:
        raise UsageError(f"--top {top} is out of range: 1 to 1000")
    if run_dir is not None and not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a run directory")
    if diff:
        a, b = (store.resolve(spec, run_dir) for spec in diff)
        before, after = sites.by(a.profile(), by), sites.by(b.profile(), by)
        console.print(f"A: {a.path}\nB: {b.path}")
        print_sites(console, f"largest changes by {by} from A to B (bytes in use in B)",
                    sites.growth(before, after, top), growth_label="B - A",
                    total=sum(after.values()), total_growth=sum(after.values()) - sum(before.values()))
        return 0
    if run_dir is None:
        raise UsageError("profile: give a RUN_DIR, or --diff A B")
    found = store.captures(run_dir)
    if not found:
        raise UsageError(f"{run_dir} has no heap profiles (no {run_dir / 'profiles'}/*{store.SUFFIX})")
    started = _started(run_dir)
    print_captures(console, [{"name": c.name, "at_s": c.t - started if started else None,
                              "inuse_bytes": c.profile().total()} for c in found])
    last, first = store.evidence(run_dir) or (found[-1], None)
    listed = store.top_sites(run_dir, top, by)
    growth = sum(s.growth_bytes or 0 for s in listed) if first else None
    print_sites(console, f"top sites by {by} at {last.name}", listed,
                growth_label=f"growth since {first.name}" if first else None, total_growth=growth)
    return 0


def _started(run_dir: Path) -> float | None:
    from harness.rundir import RunDir, read_json

    path = RunDir(run_dir).run_json
    return read_json(path).get("started") if path.exists() else None
