"""`milvus-harness report`: render report.md, report.html and junit.xml again from a run directory,
or judge and report a load run made outside the harness (plain `locust` with its acks.jsonl,
optionally watched by `milvus-harness watch --out` into the same directory)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

from harness.commands.options import key_value
from harness.errors import UsageError

EXAMPLES = """examples:
  milvus-harness report reports/20261129-164530-seed-2.3.5
  milvus-harness report reports/RUN-ID                           # the pages again; nothing is re-run
  milvus-harness report my-locust-run --scenario smoke --set total_rows=1000000  # a plain-locust run's acks"""
#: The check a plain-locust run's verdict stands on: none ran, so it cannot PASS.
UNVERIFIED = ("a load run outside the harness: the acked rows were not checked against Milvus "
              "(milvus-harness run checks them)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render report.md, report.html and junit.xml again from a run directory",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory, e.g. reports/20261127-181500-seed-2.3.5, or a plain-locust "
                                   "run's directory holding its acks.jsonl")
    p.add_argument("--scenario", default="seed", help="a plain-locust run's scenario, as given to the locustfile "
                                                      "(default seed)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], type=key_value, dest="overrides",
                   help="a plain-locust run's --set, repeatable")
    p.set_defaults(func=lambda args: run(Path(args.run_dir), args.scenario, dict(args.overrides)))


def run(run_dir: Path, scenario: str = "seed", overrides: Mapping[str, str] | None = None) -> int:
    """Render the reports of a finished run directory and print the files written; a directory
    with acks.jsonl and no summary.json is judged first (see judge_outside_run)."""
    from harness.report import render_report

    if not (run_dir / "summary.json").exists():
        if not (run_dir / "acks.jsonl").exists():
            raise UsageError(f"{run_dir} is not a finished run directory (no summary.json) "
                             "nor a plain-locust run's (no acks.jsonl)")
        judge_outside_run(run_dir, scenario, overrides or {})
        print(run_dir / "summary.json")
    for written in render_report(run_dir):
        print(written)
    return 0


def judge_outside_run(run_dir: Path, scenario_name: str, overrides: Mapping[str, str]) -> None:
    """summary.json for a load the harness did not drive: its acks (and the samples and events
    of `milvus-harness watch`, when it wrote into the same directory) judged by the scenario's
    rules, with the row check marked as not run, so the verdict is FAIL or INCONCLUSIVE."""
    from harness.rundir import RunDir, read_jsonl
    from harness.run.lifecycle import finalize_run
    from harness.scenario import model as scenarios

    scenario = scenarios.load(scenario_name).with_overrides(overrides)
    paths = RunDir(run_dir)
    times = [a.get("t_start") or a["t"] for a in read_jsonl(paths.acks)] + [s["t"] for s in read_jsonl(paths.samples)]
    if not times:
        raise UsageError(f"{paths.acks} holds no insert attempt")
    ends = [a["t"] for a in read_jsonl(paths.acks)] + times
    finalize_run(paths, run_id=run_dir.resolve().name, scenario=scenario, facts={"target": "external"},
                 began=min(times), ended=max(ends), verification={"verified": None, "note": UNVERIFIED})
