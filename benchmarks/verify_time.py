"""Benchmark (not a test): how long does a passing run take after its load?

On one machine, in one invocation: `milvus-harness run` on the seed collection under an
8 GiB limit, alternately with the default verification (the fast row count when nothing was
in doubt) and with `--verify pk-ranges` (the exact check: flush, FLAT index, load, count by
primary-key range), the order flipped every round (ABBA). Each run starts its own embedded
server. Printed per run: the check that ran, load time, verification time, the time from the
end of the load (LoadStopped) to the exit of the command, time to verdict, and the whole run.

Usage: .venv/bin/python benchmarks/verify_time.py [--rows 600000] [--memory-limit 8GiB] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.rundir import read_jsonl

FAST, EXACT = "default", "pk-ranges"


def one_run(report_dir: Path, mode: str, rows: int, limit: str, version: str | None,
            users: int | None) -> dict[str, object]:
    """One `milvus-harness run`: its summary figures and the seconds from LoadStopped to exit."""
    args = [sys.executable, "-m", "harness.cli", "run", "--report-dir", str(report_dir), "--memory-limit", limit,
            "--set", f"total_rows={rows}", "--set", "check_after_restart=false"]
    if mode == EXACT:
        args += ["--verify", EXACT]
    if version:
        args += ["--milvus-version", version]
    if users:
        args += ["--users", str(users)]
    began = time.time()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    exited = time.time()
    [run_dir] = [p for p in report_dir.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    load_stopped = next(e["t"] for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "LoadStopped")
    rows_ = summary["rows"]
    return {"mode": mode, "exit": proc.returncode, "verdict": summary["verdict"],
            "check": (rows_.get("check") or {}).get("check"), "fast": (rows_.get("check") or {}).get("fast"),
            "acked": rows_["acked"], "verified": rows_.get("verified"), "rows_per_s": summary["inserts"]["rows_per_s"],
            "load_s": summary.get("load_s"), "verify_s": summary.get("verify_s"),
            "after_load_s": round(exited - load_stopped, 1), "time_to_verdict_s": summary.get("time_to_verdict_s"),
            "whole_s": round(exited - began, 1), "count_queries": rows_.get("count_queries"),
            "output": proc.stdout if proc.returncode != 0 else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--memory-limit", default="8GiB")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of runs, order flipped each round")
    parser.add_argument("--milvus-version", default=None)
    parser.add_argument("--users", type=int, default=None, help="pin the Locust users (default: the run's own)")
    args = parser.parse_args()
    results = []
    for round_ in range(args.rounds):
        for mode in ((FAST, EXACT) if round_ % 2 == 0 else (EXACT, FAST)):
            with tempfile.TemporaryDirectory(prefix="verify-time-") as tmp:
                result = one_run(Path(tmp), mode, args.rows, args.memory_limit, args.milvus_version, args.users)
            results.append(result)
            print(f"round {round_ + 1} {mode:9} exit {result['exit']} {result['verdict']:4} check {result['check']}"
                  f"{' (fast path)' if result['fast'] else ''}: acked {result['acked']:,} verified "
                  f"{result['verified'] if result['verified'] is None else format(result['verified'], ',')}, "
                  f"{result['rows_per_s']:,.0f} rows/s, load {result['load_s']} s, verification "
                  f"{result['verify_s']} s, load end to exit {result['after_load_s']} s, time to verdict "
                  f"{result['time_to_verdict_s']} s, whole run {result['whole_s']} s"
                  + (f", {result['count_queries']} count queries" if result["count_queries"] is not None else ""),
                  flush=True)
            if result["output"]:
                print(result["output"][-2000:], flush=True)
    for mode in (FAST, EXACT):
        mine = [r for r in results if r["mode"] == mode]
        print(f"{mode:9} median over {len(mine)}: load end to exit "
              f"{statistics.median(float(r['after_load_s']) for r in mine):.1f} s, verification "
              f"{statistics.median(float(r['verify_s'] or 0) for r in mine):.1f} s")


if __name__ == "__main__":
    main()
