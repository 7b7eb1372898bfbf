"""`milvus-harness matrix`: one run per cell of versions x `--vary` values, and a page comparing them.

A cell is one Milvus version with one value of every varied axis (a scenario field such as
`shards`, a rule such as `rules.max_insert_p50_ms`, or the target's `memory_limit`). Every
cell runs on a fresh target through `lifecycle.run`, unless a finished run with the same key
(docs/design.md, "Contracts") is already in the report dir: then that run is reused, as asv
reuses a stored result. Everything is validated before the first cell starts, so bad input
is one line and exit 2 with nothing created.

The matrix writes reports/matrix-<id>/ (summary.json, matrix.md, index.html; see
harness.report.matrix_page) after every cell, so a long matrix can be watched as it goes. The
cells' own run directories sit next to it in the report dir, where later runs find them.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from rich.console import Console

from harness.run import lifecycle
from harness.scenario import model as scenarios
from harness.errors import ExitCode, HarnessError, Interrupted, UsageError
from harness.compare.run_keys import (component_total, crash_line, find_finished_run, finished_summary,
                                      memory_limit_bytes, peak_memory_bytes)
from harness.rundir import new_numbered_dir, read_json, write_json
from harness.run.lifecycle import RunOptions
from harness.units import parse_bytes
from harness.judge.verdict import Verdict

log = logging.getLogger(__name__)

__all__ = [
    "Cell",
    "CellResult",
    "MatrixResult",
    "cells_of",
    "parse_axes",
    "plan",
    "resolve_versions",
    "run_cell",
    "run_matrix",
]

#: Axes that set a target option rather than a scenario field.
TARGET_AXES = ("memory_limit",)
#: Scenario fields that do not change what Milvus sees (not in the scenario hash): varying
#: them would give cells with one key, so the second would just reuse the first.
_NOT_AXES = ("name", "description", "rules")


@dataclass(frozen=True)
class Cell:
    """One version with one value of every varied axis, in the order the axes were given."""

    version: str
    values: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """'2.3.5 shards=4 partitions=16'."""
        return " ".join([self.version, *(f"{k}={v}" for k, v in self.values)])

    @property
    def slug(self) -> str:
        """The label as a directory-name part: '2.3.5-shards4-partitions16'."""
        parts = [self.version, *(f"{k.removeprefix('rules.')}{v}" for k, v in self.values)]
        return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


@dataclass(frozen=True)
class CellResult:
    """What one cell gave: its verdict, run directory (None if it never got one) and summary."""

    cell: Cell
    verdict: Verdict
    run_dir: Path | None
    summary: Mapping[str, Any]
    reused: bool = False


@dataclass
class MatrixResult:
    """The end of a matrix: every cell's result and where the page is."""

    path: Path
    cells: list[CellResult] = field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.cells if c.verdict == verdict)

    @property
    def exit_code(self) -> int:
        """1 if any cell FAILed; else 125 if any was INCONCLUSIVE; else 0."""
        if self.count(Verdict.FAIL):
            return int(ExitCode.FAIL)
        if self.count(Verdict.INCONCLUSIVE):
            return int(ExitCode.INCONCLUSIVE)
        return int(ExitCode.PASS)


# --- input: versions and axes, all checked before anything starts ---------------------------


def _split_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise UsageError(f"{what} {text!r} is not a comma-separated list (no empty items), e.g. 1,4,16")
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise UsageError(f"{what} {text!r} names {item!r} twice")
        seen.add(item)
    return items


def resolve_versions(text: str, target: str) -> list[str]:
    """--milvus-versions as a list: comma-separated, or `all` (embedded: every published version)."""
    if target == "embedded" and text.strip() == "all":
        from harness.targets.install import published_versions

        return published_versions()
    return _split_list(text, "--milvus-versions")


def _axis_keys() -> list[str]:
    top = [f.name for f in dataclasses.fields(scenarios.Scenario) if f.name not in _NOT_AXES]
    rules = [f"rules.{f.name}" for f in dataclasses.fields(scenarios.Rules)]
    return [*top, *rules, *TARGET_AXES]


def parse_axes(specs: Sequence[str]) -> dict[str, list[str]]:
    """`--vary key=v1,v2,...` flags as {key: [values]}, in the order given; bad syntax or keys refused."""
    known = _axis_keys()
    axes: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--vary {spec!r} is not key=v1,v2,..., e.g. --vary shards=1,4,16")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(f"--vary {key!r} is not a scenario field, rule or memory_limit; {hint}"
                             f"allowed: {', '.join(known)}")
        if key in axes:
            raise UsageError(f"--vary {key} is given twice; list all its values in one flag, e.g. {key}=1,4,16")
        axes[key] = _split_list(values, f"--vary {key}")
    return axes


def cells_of(versions: Sequence[str], axes: Mapping[str, Sequence[str]]) -> list[Cell]:
    """Every cell, version-major, then the axes' product in the order they were given."""
    keys = list(axes)
    return [Cell(version, tuple(zip(keys, combo)))
            for version in versions for combo in itertools.product(*(axes[k] for k in keys))]


def cell_options(base: RunOptions, cell: Cell, run_id: str | None = None) -> RunOptions:
    """The RunOptions of one cell: the base with the cell's version and axis values."""
    overrides = dict(base.overrides)
    target = replace(base.target, milvus_version=cell.version)
    for key, value in cell.values:
        if key == "memory_limit":
            target = replace(target, memory_limit=parse_bytes(value, "--vary memory_limit"))
        else:
            overrides[key] = value
    return replace(base, overrides=overrides, target=target, run_id=run_id)


def plan(versions: Sequence[str], axes: Mapping[str, Sequence[str]], base: RunOptions) -> list[Cell]:
    """Check the whole matrix and return its cells; any bad input is a UsageError here."""
    if base.target.target == "external":
        raise UsageError("matrix needs a target it can start once per cell: --target embedded or kind "
                         "(an external Milvus is one fixed deployment)")
    if not versions:
        raise UsageError("matrix needs at least one version: --milvus-versions 2.3.4,2.3.5")
    if len(set(versions)) != len(versions):
        twice = next(v for v in versions if list(versions).count(v) > 1)
        raise UsageError(f"--milvus-versions names {twice!r} twice")
    for key in axes:
        if key in base.overrides:
            raise UsageError(f"--vary {key} and --set {key} are both given; keep one")
        if key == "memory_limit" and base.target.memory_limit is not None:
            raise UsageError("--vary memory_limit and --memory-limit are both given; keep one")
        for value in axes[key]:
            # Each value on its own first, so the error names the flag and the value.
            try:
                lifecycle.prepare(cell_options(base, Cell("", ((key, value),))))
            except UsageError as exc:
                message = str(exc)
                raise UsageError(message if message.startswith("--vary") else f"--vary {key}: {message}") from None
    cells = cells_of(versions, axes)
    for cell in cells:
        lifecycle.prepare(cell_options(base, cell))
    if base.target.target == "embedded":
        from harness.targets.install import check_supported, published_versions

        published = published_versions()
        for version in versions:
            check_supported(version)
            if version not in published:
                close = difflib.get_close_matches(version, published, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise UsageError(f"milvus version {version!r} is not published; {hint}"
                                 f"published: {', '.join(published)}")
    return cells


# --- running --------------------------------------------------------------------------------


def run_cell(options: RunOptions, console: Console) -> Path:
    """Run one cell for real and return its run directory (with summary.json).

    This is the one seam tests replace to script cells: a stand-in writes a run directory
    for `options` and returns its path.
    """
    return lifecycle.run(options, console).run_dir


def _new_matrix_dir(report_dir: Path, matrix_id: str | None) -> Path:
    if matrix_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", matrix_id):
        raise UsageError(f"--id {matrix_id!r}: use letters, digits, '.', '_' and '-' (it names a directory)")
    return new_numbered_dir(report_dir, "matrix-", matrix_id or time.strftime("%Y%m%d-%H%M%S"))


def _free_run_id(report_dir: Path, base: str) -> str:
    """base, or base-2, ...: a run id no directory in report_dir has yet (an aborted matrix may)."""
    run_id, n = base, 1
    while (report_dir / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _cell_summary(matrix_dir: Path, cell: Cell, result: CellResult | None) -> dict[str, Any]:
    """One cell as summary.json lists it; a cell not run yet is PENDING."""
    row: dict[str, Any] = {"version": cell.version, "values": dict(cell.values), "label": cell.label}
    if result is None:
        return {**row, "verdict": None, "status": "PENDING"}
    s = result.summary
    rows = s.get("rows") if isinstance(s.get("rows"), Mapping) else {}
    inserts = s.get("inserts") if isinstance(s.get("inserts"), Mapping) else {}
    latency = inserts.get("latency_ms") if isinstance(inserts.get("latency_ms"), Mapping) else {}
    first_oom = s.get("first_oom") if isinstance(s.get("first_oom"), Mapping) else None
    # Relative, so the report dir can be copied or uploaded whole and its links still work.
    run_dir = None if result.run_dir is None else os.path.relpath(Path(result.run_dir).resolve(), matrix_dir.resolve())
    return {
        **row,
        "verdict": result.verdict.value,
        "status": "FINISHED",
        "reasons": [str(r) for r in s.get("reasons") or []],
        "crash": crash_line(s),
        "rows_planned": rows.get("planned"),
        "rows_acked": rows.get("acked"),
        "rows_acked_at_first_oom": first_oom.get("rows_acked_before") if first_oom else None,
        "oom_kills": component_total(s, "oom_kills"),
        "restarts": component_total(s, "restarts"),
        "peak_memory_bytes": peak_memory_bytes(s),
        "limit_bytes": memory_limit_bytes(s) or s.get("memory_limit_bytes"),
        "memory_growth_mb_per_100k_rows": s.get("memory_growth_mb_per_100k_rows"),
        "rows_per_s": inserts.get("rows_per_s"),
        "users": (s.get("concurrency") or {}).get("users"),
        "insert_p50_ms": latency.get("p50"),
        "insert_p95_ms": latency.get("p95"),
        "time_to_verdict_s": s.get("time_to_verdict_s"),
        "verify_s": s.get("verify_s"),
        "run_id": s.get("run_id") or (result.run_dir.name if result.run_dir else None),
        "run_dir": None if run_dir is None else Path(run_dir).as_posix(),
        "reused": result.reused,
    }


def _write(matrix_dir: Path, info: Mapping[str, Any], cells: Sequence[Cell], results: Mapping[Cell, CellResult],
           status: str, console: Console) -> None:
    """summary.json, then the pages; a page bug is a warning, never the end of a long matrix."""
    done = [results[c] for c in cells if c in results]
    result = MatrixResult(matrix_dir, done)
    counts = {v.value: result.count(v) for v in Verdict}
    write_json(matrix_dir / "summary.json", {
        "kind": "matrix",
        **info,
        "status": status,
        "exit_code": result.exit_code if status == "FINISHED" else None,
        "counts": {**counts, "PENDING": len(cells) - len(done)},
        "cells": [_cell_summary(matrix_dir, c, results.get(c)) for c in cells],
    })
    try:
        from harness.report.matrix_page import render_matrix

        render_matrix(matrix_dir, images=status != "RUNNING")
    except Exception as exc:  # noqa: BLE001  # the cells' runs and summary.json are what matter
        log.warning("matrix page rendering failed", exc_info=True)
        console.print(f"[yellow]warning: matrix page rendering failed: {exc}[/]")


def _run_one(cell: Cell, options: RunOptions, console: Console) -> CellResult:
    """Reuse a finished run with the cell's key, else run the cell; a target that cannot start is INCONCLUSIVE."""
    scenario, target = lifecycle.prepare(options)
    key = lifecycle.run_key(scenario, target, cell.version, options.overrides)
    reused = find_finished_run(options.report_dir, key)
    summary = finished_summary(reused) if reused is not None else None
    if reused is not None and summary is not None:
        return CellResult(cell, Verdict(summary["verdict"]), reused, summary, reused=True)
    try:
        run_dir = run_cell(options, console)
    except HarnessError as exc:
        # A version that cannot be installed or started says nothing about the scenario: a skip,
        # as for bisect. Bad input would have been refused by plan() before the first cell.
        if isinstance(exc, (UsageError, Interrupted)) or exc.exit_code != ExitCode.INCONCLUSIVE:
            raise
        return CellResult(cell, Verdict.INCONCLUSIVE, None, {"reasons": [str(exc)]})
    try:
        summary = read_json(Path(run_dir) / "summary.json")
    except (OSError, ValueError) as exc:
        return CellResult(cell, Verdict.INCONCLUSIVE, Path(run_dir),
                          {"reasons": [f"the run wrote no readable summary.json: {exc}"]})
    if summary.get("status") == "ABORTED" or summary.get("verdict") not in {v.value for v in Verdict}:
        code = int(summary.get("exit_code") or ExitCode.INTERRUPTED)
        if code == ExitCode.INTERRUPTED:
            raise KeyboardInterrupt
        raise Interrupted(code - 128) if code > 128 else HarnessError(f"cell {cell.label} was aborted", code)
    return CellResult(cell, Verdict(summary["verdict"]), Path(run_dir), summary)


def run_matrix(versions: Sequence[str], axes: Mapping[str, Sequence[str]], base: RunOptions,
               console: Console, *, matrix_id: str | None = None) -> MatrixResult:
    """Run (or reuse) every cell and write reports/matrix-<id>/; see MatrixResult.exit_code.

    Bad input raises UsageError before anything is created. Ctrl-C or SIGTERM during a cell
    stops the matrix after that cell's run has cleaned up; the page then says ABORTED.
    """
    cells = plan(versions, axes, base)
    scenario, target = lifecycle.prepare(base)
    matrix_dir = _new_matrix_dir(base.report_dir, matrix_id)
    info = {
        "id": matrix_dir.name.removeprefix("matrix-"),
        "command": base.command,
        "target": base.target.target,
        "scenario": scenario.name,
        "versions": list(versions),
        "axes": {k: list(v) for k, v in axes.items()},
        "overrides": dict(base.overrides),
        # One user count for every cell (--users), or None: each cell ramps its own (in its key either way).
        "users": scenario.users,
        "profile_every_s": base.profile_every,  # --profile-every, the same for every cell
        "memory_limit_bytes": None if "memory_limit" in axes else target.memory_limit,
        "started": time.time(),
    }
    results: dict[Cell, CellResult] = {}
    _write(matrix_dir, info, cells, results, "RUNNING", console)
    run_prefix = f"{info['id']}-{scenario.name}"
    status = "ABORTED"
    try:
        for n, cell in enumerate(cells, 1):
            console.print(f"[bold]matrix [{n}/{len(cells)}][/] {cell.label}")
            options = cell_options(base, cell, _free_run_id(base.report_dir, f"{run_prefix}-{cell.slug}"))
            result = _run_one(cell, options, console)
            results[cell] = result
            where = f"reused {result.run_dir}" if result.reused else (str(result.run_dir or "no run directory"))
            console.print(f"  {cell.label}: {result.verdict.value} ({where})", soft_wrap=True)
            _write(matrix_dir, info, cells, results, "RUNNING", console)
        status = "FINISHED"
    finally:
        _write(matrix_dir, {**info, "ended": time.time()}, cells, results, status, console)
    return MatrixResult(matrix_dir, [results[c] for c in cells])
