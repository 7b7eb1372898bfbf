"""Two finished runs side by side, in the manner of `asv compare`.

Each figure that matters (verdict, rows at the first OOM, peak against the limit, growth,
insert rate and latency, lost rows, time to verdict) is read from the two runs' summary.json,
given its ratio B / A, and flagged when it moved past the factor: "worse" or "better" by the
direction that figure has. Any two run directories compare, from any targets; where their
scenarios or targets differ, a note says so, since the figures then measure different things.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import ExitCode, UsageError
from harness.rundir import SCHEMA_VERSION, read_json
from harness.units import format_bytes

#: Verdicts that say something about the component; INCONCLUSIVE and ABORTED runs do not.
_VERDICT_RANK = {"PASS": 0, "FAIL": 1}

HIGHER_IS_WORSE, LOWER_IS_WORSE, INFORMATION = "higher is worse", "lower is worse", "information"


@dataclass(frozen=True)
class Row:
    """One figure of the comparison."""

    name: str
    a: str
    b: str
    ratio: float | None  # B / A; None where it has no meaning (text, a missing figure)
    change: str  # "worse", "better" or "" (within the factor, or not comparable)
    direction: str


@dataclass
class Comparison:
    """What `compare` prints and how it exits."""

    a: Path
    b: Path
    factor: float
    describe_a: str = ""  # what run A ran: target, version, scenario, limit
    describe_b: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worse(self) -> list[Row]:
        return [r for r in self.rows if r.change == "worse"]

    @property
    def exit_code(self) -> int:
        """1 when a figure got worse past the factor, else 0 (as `asv compare` with a factor)."""
        return int(ExitCode.FAIL) if self.worse else int(ExitCode.PASS)


def load_finished_run(path: Path, which: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """summary.json and run.json of a finished run directory; a bad path is a UsageError."""
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise UsageError(f"{which} {str(path)!r} is not a finished run directory (no summary.json); "
                         f"give a directory such as reports/20261127-181500-seed-2.3.5")
    try:
        summary = read_json(summary_path)
        run = read_json(path / "run.json") if (path / "run.json").is_file() else {}
    except (ValueError, OSError) as exc:
        raise UsageError(f"{which} {str(path)!r}: its summary.json or run.json cannot be read ({exc})") from None
    if int(summary.get("schema_version", 0)) > SCHEMA_VERSION:
        raise UsageError(f"{which} {str(path)!r} was written by a newer milvus-harness (schema "
                         f"{summary['schema_version']}, this one reads {SCHEMA_VERSION})")
    return summary, run


def _peak_fraction(summary: dict[str, Any]) -> tuple[float | None, str]:
    """The component closest to its limit: peak / limit, and how it reads."""
    best: tuple[float, str] | None = None
    for name, comp in (summary.get("components") or {}).items():
        peak, limit = comp.get("peak_memory_bytes"), comp.get("limit_bytes")
        if peak and limit:
            fraction = peak / limit
            if best is None or fraction > best[0]:
                best = (fraction, f"{name} {format_bytes(peak)} of {format_bytes(limit)} ({fraction:.0%})")
    return (best[0], best[1]) if best else (None, "-")


def _number(value: Any, fmt: Callable[[float], str]) -> tuple[float | None, str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, "-"
    return float(value), fmt(float(value))


def _figures(summary: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """Each figure as (number or None, text)."""
    inserts = summary.get("inserts") or {}
    first_oom = summary.get("first_oom")
    rows = summary.get("rows") or {}
    return {
        "rows at the first OOM kill": (float(first_oom["rows_acked_before"]), f"{first_oom['rows_acked_before']:,}")
        if first_oom else (None, "no OOM kill"),
        "peak / limit": _peak_fraction(summary),
        "memory growth (MB per 100k rows)": _number(summary.get("memory_growth_mb_per_100k_rows"), "{:,.0f}".format),
        "insert rows/s": _number(inserts.get("rows_per_s"), "{:,.0f}".format),
        "insert p95 (ms)": _number((inserts.get("latency_ms") or {}).get("p95"), "{:,.0f}".format),
        "rows lost": _number(rows.get("lost"), "{:,.0f}".format),
        "time to verdict (s)": _number(summary.get("time_to_verdict_s"), "{:,.1f}".format),
        "load (s)": _number(summary.get("load_s"), "{:,.1f}".format),
        "verification (s)": _number(summary.get("verify_s"), "{:,.1f}".format),
    }


_DIRECTION = {
    "rows at the first OOM kill": LOWER_IS_WORSE,
    "peak / limit": HIGHER_IS_WORSE,
    "memory growth (MB per 100k rows)": HIGHER_IS_WORSE,
    "insert rows/s": LOWER_IS_WORSE,
    "insert p95 (ms)": HIGHER_IS_WORSE,
    "rows lost": HIGHER_IS_WORSE,
    # Shorter is better for a PASS and "failed sooner" for a FAIL: shown, never judged.
    "time to verdict (s)": INFORMATION,
    "load (s)": INFORMATION,
    "verification (s)": INFORMATION,
}


def _change(a: float | None, b: float | None, direction: str, factor: float) -> str:
    if a is None or b is None or direction == INFORMATION:
        return ""
    high, low = (b, a) if direction == HIGHER_IS_WORSE else (a, b)
    if high > low * factor and high > low:
        return "worse"
    if low > high * factor and low > high:
        return "better"
    return ""


def _verdict_row(a: dict[str, Any], b: dict[str, Any], notes: list[str]) -> Row:
    va, vb = str(a.get("verdict")), str(b.get("verdict"))
    for which, verdict in (("A", va), ("B", vb)):
        if verdict not in _VERDICT_RANK:
            notes.append(f"run {which} is {verdict}: its figures say nothing certain of the component")
    change = ""
    if va in _VERDICT_RANK and vb in _VERDICT_RANK and va != vb:
        change = "worse" if _VERDICT_RANK[vb] > _VERDICT_RANK[va] else "better"
    return Row("verdict", va, vb, None, change, "FAIL is worse than PASS")


def _oom_row(name: str, a: tuple[float | None, str], b: tuple[float | None, str], factor: float) -> Row:
    """An OOM kill in one run only is a change by itself: B OOM-killed where A was not is worse."""
    (na, ta), (nb, tb) = a, b
    if na is None and nb is not None:
        return Row(name, ta, tb, None, "worse", LOWER_IS_WORSE)
    if na is not None and nb is None:
        return Row(name, ta, tb, None, "better", LOWER_IS_WORSE)
    return Row(name, ta, tb, _ratio(na, nb), _change(na, nb, LOWER_IS_WORSE, factor), LOWER_IS_WORSE)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return None if b == 0 else math.inf
    return b / a


def compare_runs(a: Path, b: Path, factor: float = 1.1) -> Comparison:
    """Compare run B against run A: B's figures, their ratio to A's, and what moved past `factor`."""
    if not factor >= 1.0:
        raise UsageError(f"--factor {factor} must be at least 1.0, e.g. 1.1 (10 %)")
    summary_a, run_a = load_finished_run(a, "RUN_A")
    summary_b, run_b = load_finished_run(b, "RUN_B")
    result = Comparison(a=a, b=b, factor=factor, describe_a=describe_run(summary_a), describe_b=describe_run(summary_b))
    result.rows.append(_verdict_row(summary_a, summary_b, result.notes))
    figures_a, figures_b = _figures(summary_a), _figures(summary_b)
    for name, direction in _DIRECTION.items():
        if name == "rows at the first OOM kill":
            result.rows.append(_oom_row(name, figures_a[name], figures_b[name], factor))
            continue
        (na, ta), (nb, tb) = figures_a[name], figures_b[name]
        result.rows.append(Row(name, ta, tb, _ratio(na, nb), _change(na, nb, direction, factor), direction))
    result.notes.extend(_setting_notes(summary_a, run_a, summary_b, run_b))
    result.notes.append("top allocation sites: neither run has heap profiles")
    return result


def describe_run(summary: dict[str, Any]) -> str:
    """One line naming what a run ran: target, version, scenario, limit."""
    return (f"{summary.get('run_id', '?')}: {summary.get('target') or '?'} {summary.get('milvus_version') or ''}, "
            f"scenario {summary.get('scenario') or '?'}, limit {format_bytes(summary.get('memory_limit_bytes'))}")


def _setting_notes(summary_a: dict[str, Any], run_a: dict[str, Any],
                   summary_b: dict[str, Any], run_b: dict[str, Any]) -> list[str]:
    """What differs between the two runs' settings, so a reader knows what the ratios compare."""
    notes = []
    hash_a, hash_b = ((run.get("scenario") or {}).get("hash") for run in (run_a, run_b))
    if summary_a.get("scenario") != summary_b.get("scenario") or (hash_a and hash_b and hash_a != hash_b):
        notes.append("the scenarios differ: the figures measure different loads")
    for key, what in (("target", "targets"), ("milvus_version", "Milvus versions"),
                      ("memory_limit_bytes", "memory limits")):
        if summary_a.get(key) != summary_b.get(key):
            notes.append(f"the {what} differ")
    return notes
