"""The CLI's console: the only place that prints tables and colours (respects NO_COLOR, non-TTY)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from harness.load import ramp
from harness.units import format_bytes

if TYPE_CHECKING:
    from harness.compare.matrix import MatrixResult
    from harness.compare.two_runs import Comparison
    from harness.run.lifecycle import RunResult

_VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow", "ABORTED": "bold"}


def make_console() -> Console:
    """A console for the CLI; in CI logs (not a terminal) lines are not wrapped at 80 columns,
    so paths and reasons stay whole and greppable."""
    console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
    if not console.is_terminal:
        console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False, width=200, soft_wrap=True)
    return console


def print_result(console: Console, result: "RunResult") -> None:
    """The verdict table, then the run directory last (what CI logs and users look for)."""
    s = result.summary
    verdict = s.get("verdict", "ABORTED")
    table = Table(title=f"milvus-harness run {s.get('run_id', '')}", show_header=False)
    table.add_row("verdict", f"[{_VERDICT_STYLE.get(verdict, '')}]{verdict}[/]")
    for reason in s.get("reasons", []):
        table.add_row("", reason)
    table.add_row("milvus", f"{s.get('target')} {s.get('milvus_version') or ''}")
    table.add_row("limit", f"{format_bytes(s.get('memory_limit_bytes'))} ({s.get('isolation') or 'none'})")
    rows = s.get("rows", {})
    table.add_row("rows", f"{rows.get('acked', 0):,} acked of {rows.get('planned', 0):,} planned; "
                          + (f"verified {rows['verified']:,}" if rows.get("verified") is not None else "not verified")
                          + (f"; {rows['duplicated']:,} present twice (retried inserts)" if rows.get("duplicated") else ""))
    for name, comp in s.get("components", {}).items():
        table.add_row(name, f"peak {format_bytes(comp.get('peak_memory_bytes'))} of "
                            f"{format_bytes(comp.get('limit_bytes'))}, restarts {comp.get('restarts', 0)}, "
                            f"OOM kills {comp.get('oom_kills', 0)}")
    ins = s.get("inserts", {})
    lat = ins.get("latency_ms", {})
    if ins.get("count"):
        table.add_row("inserts", f"{ins['count']} ({ins.get('failures', 0)} failed), {ins.get('rows_per_s', 0):,.0f} rows/s, "
                                 f"p50 {lat.get('p50') or 0:,.0f} ms, p95 {lat.get('p95') or 0:,.0f} ms")
    users = ramp.describe(s.get("concurrency"))
    if users:
        table.add_row("users", users)
    if s.get("memory_growth_mb_per_100k_rows") is not None:
        table.add_row("growth", f"{s['memory_growth_mb_per_100k_rows']:,.0f} MB per 100k rows")
    if s.get("time_to_verdict_s") is not None:
        table.add_row("time to verdict", f"{s['time_to_verdict_s']:.1f} s from the command"
                      + (f" ({s['time_to_verdict_basis']})" if s.get("time_to_verdict_basis") else ""))
    if s.get("load_s") is not None or s.get("verify_s") is not None:
        check = (rows.get("check") or {}).get("check")
        table.add_row("phases", f"load {s.get('load_s') or 0:.1f} s, verification {s.get('verify_s') or 0:.1f} s"
                                + (f" ({check} check)" if check else ""))
    console.print(table)
    console.print(f"report: {result.run_dir / 'report.html'}")
    console.print(f"run directory: {result.run_dir}")


def print_scenarios(console: Console, name: str | None) -> None:
    from harness.scenario import model as scenarios

    if name:
        s = scenarios.load(name)
        table = Table(title=f"scenario {s.name} ({s.digest()})", show_header=True)
        table.add_column("field")
        table.add_column("value")
        for key, value in s.to_json().items():
            if key == "rules":
                for rule, rv in value.items():
                    table.add_row(f"rules.{rule}", ",".join(rv) if isinstance(rv, (list, tuple)) else str(rv))
            else:
                table.add_row(key, str(value))
        console.print(table)
        console.print("rules.under_test: the Milvus roles whose OOM kill, restart or stall FAILs the run "
                      f"({', '.join(scenarios.MILVUS_ROLES)}, or all); the same of any other Milvus component "
                      "makes it INCONCLUSIVE. The embedded target's standalone server holds every role and is "
                      "always under test. Change it with --set rules.under_test=all (or e.g. streamingnode,datanode).",
                      markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title="built-in scenarios")
    table.add_column("name")
    table.add_column("description")
    for n in scenarios.builtin_names():
        table.add_row(n, scenarios.load(n).description)
    console.print(table)


def print_matrix(console: Console, result: "MatrixResult", axes: Sequence[str] = ()) -> None:
    """The cells as a table, then the page (what CI logs and users look for)."""
    from harness.compare.run_keys import peak_memory_bytes
    from harness.judge.verdict import Verdict

    table = Table(title=f"milvus-harness matrix {result.path.name.removeprefix('matrix-')}")
    for name in ("version", *axes, "verdict", "rows at OOM", "peak", "MB/100k rows", "rows/s", "p50 ms"):
        numeric = name in ("rows at OOM", "peak", "MB/100k rows", "rows/s", "p50 ms")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=name in ("verdict", "peak"))
    for cell in result.cells:
        s = cell.summary
        values = dict(cell.cell.values)
        first_oom = s.get("first_oom") if isinstance(s.get("first_oom"), Mapping) else None
        growth = s.get("memory_growth_mb_per_100k_rows")
        inserts = s.get("inserts") if isinstance(s.get("inserts"), Mapping) else {}
        p50 = (inserts.get("latency_ms") or {}).get("p50") if isinstance(inserts, Mapping) else None
        table.add_row(
            cell.cell.version, *(values.get(a, "") for a in axes),
            f"[{_VERDICT_STYLE.get(cell.verdict.value, '')}]{cell.verdict.value}[/]" + (" (reused)" if cell.reused else ""),
            f"{first_oom['rows_acked_before']:,}" if first_oom and first_oom.get("rows_acked_before") is not None
            else "-",
            format_bytes(peak_memory_bytes(s)),
            f"{growth:,.0f}" if isinstance(growth, (int, float)) else "-",
            f"{inserts.get('rows_per_s'):,.0f}" if isinstance(inserts.get("rows_per_s"), (int, float)) else "-",
            f"{p50:,.0f}" if isinstance(p50, (int, float)) else "-",
        )
    console.print(table)
    counts = ", ".join(f"{result.count(v)} {v.value}" for v in Verdict if result.count(v))
    console.print(f"matrix: {len(result.cells)} cells: {counts or 'none'}")
    console.print(f"report: {result.path / 'index.html'}", soft_wrap=True)


def print_pods(console: Console, title: str, pods: Sequence[Mapping[str, Any]]) -> None:
    """`cluster status`: one row per pod (kube.cluster.pod_summary's fields), by name."""
    table = Table(title=title)
    for column in ("pod", "component", "phase", "ready", "restarts", "waiting"):
        table.add_column(column)
    for p in sorted(pods, key=lambda p: p["name"]):
        table.add_row(p["name"], p["component"], p["phase"], "yes" if p["ready"] else "no",
                      str(p["restarts"]), p["waiting"] or "")
    console.print(table)


_CHANGE_STYLE = {"worse": "bold red", "better": "bold green"}


def print_comparison(console: Console, comparison: "Comparison") -> None:
    """`compare`: what A and B ran, then each figure with its ratio; what moved past the factor is marked."""
    for which, line in (("A", comparison.describe_a), ("B", comparison.describe_b)):
        console.print(f"{which}  {line}", markup=False)
    table = Table(title=f"B against A (factor {comparison.factor:g})")
    for column in ("figure", "A", "B", "B / A", "change"):
        table.add_column(column, justify="right" if column in ("A", "B", "B / A") else "left")
    for row in comparison.rows:
        ratio = "-" if row.ratio is None else ("inf" if row.ratio == float("inf") else f"{row.ratio:.2f}")
        change = f"[{_CHANGE_STYLE[row.change]}]{row.change}[/]" if row.change else ""
        table.add_row(row.name, row.a, row.b, ratio, change)
    console.print(table)
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False)
    worse = comparison.worse
    console.print(f"{len(worse)} figure(s) worse past the factor: {', '.join(r.name for r in worse)}" if worse
                  else "nothing got worse past the factor", markup=False)


def print_sites(console: Console, title: str, sites: Sequence[Any], *, growth_label: str | None = None,
                total: int | None = None, total_growth: int | None = None) -> None:
    """Allocation sites of a heap profile (harness.profiles.sites.Site): bytes, share and, with
    `growth_label`, the growth since the capture it names; the last row is the profile's
    `total` (default: the sites' sum, which is the total when they came from sites.top)."""
    def signed(value: int | None) -> str:
        return "-" if value is None else ("+" if value >= 0 else "-") + format_bytes(abs(value))

    table = Table(title=title)
    table.add_column("site", overflow="fold")
    table.add_column("in use", justify="right")
    table.add_column("share", justify="right")
    if growth_label:
        table.add_column(growth_label, justify="right")
    for site in sites:
        row = [site.name, format_bytes(site.bytes), f"{100 * site.share:.1f} %"]
        table.add_row(*row, *([signed(site.growth_bytes)] if growth_label else []))
    whole = sum(s.bytes for s in sites) if total is None else total
    table.add_row("total in use", format_bytes(whole), "", *([signed(total_growth)] if growth_label else []))
    console.print(table)


def print_captures(console: Console, rows: Sequence[Mapping[str, Any]]) -> None:
    """A run's heap profiles: name, when (seconds into the run) and in-use bytes."""
    table = Table(title="heap profiles")
    for column in ("capture", "at", "in use"):
        table.add_column(column, justify="left" if column == "capture" else "right")
    for row in rows:
        table.add_row(row["name"], f"{row['at_s']:.0f} s" if row.get("at_s") is not None else "-",
                      format_bytes(row["inuse_bytes"]))
    console.print(table)
