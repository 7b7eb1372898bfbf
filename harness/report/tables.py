"""What every report renderer shows, formatted once so report.md and report.html agree: number and
time formats, the facts, the component / rows / inserts tables and the list of run files."""

from __future__ import annotations

import time
from typing import Any, Mapping

from harness.load import ramp
from harness.report.model import RunReport, float_or_none
from harness.units import format_bytes

def fmt_count(value: Any) -> str:
    """650000 -> '650,000'; None -> '-'."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def phase_times(summary: dict[str, Any]) -> str:
    """'load 31.6 s, verification 12.0 s (rows check), run 61.2 s' from summary.json."""
    check = ((summary.get("rows") or {}).get("check") or {}).get("check")
    return (f"load {fmt_seconds(float_or_none(summary.get('load_s')))}, verification "
            f"{fmt_seconds(float_or_none(summary.get('verify_s')))}" + (f" ({check} check)" if check else "")
            + f", run {fmt_seconds(float_or_none(summary.get('duration_s')))}")


def fmt_seconds(value: float | None) -> str:
    """41.535 -> '41.5 s'; 3725 -> '1 h 2 min 5 s'."""
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h " if hours else "") + f"{minutes} min {seconds} s"


def fmt_clock(t: float | None) -> str:
    """An epoch time as 'YYYY-MM-DD HH:MM:SS UTC' (CI and laptops disagree on local time)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def fmt_ms(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:,.0f} ms"


def fmt_value(value: Any) -> str:
    """A scenario or config value as a user would write it with --set."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


ISOLATION_NOTES = {
    "watchdog": "the harness SIGKILLs at the limit: not a kernel OOM kill",
    "cgroup-v1": "kernel memory cgroup",
    "cgroup-v2": "kernel memory cgroup",
}


def facts(report: RunReport) -> list[tuple[str, str]]:
    """The run's inputs and environment, as (label, text) rows."""
    run = report.run
    isolation = run.get("isolation")
    isolation_text = "-" if not isolation else (
        f"{isolation} ({ISOLATION_NOTES[isolation]})" if isolation in ISOLATION_NOTES else str(isolation))
    scenario = report.scenario_name + (f" (hash {report.scenario_hash[:12]})" if report.scenario_hash else "")
    overrides = run.get("overrides") or {}
    host = run.get("host") or {}
    host_parts = []
    if host.get("cpus"):
        host_parts.append(f"{host['cpus']} CPUs")
    if host.get("memory_bytes"):
        host_parts.append(f"{format_bytes(host['memory_bytes'])} RAM")
    if host.get("kernel"):
        host_parts.append(f"Linux {host['kernel']}")
    if host.get("python"):
        host_parts.append(f"Python {host['python']}")
    rows: list[tuple[str, str]] = [
        ("Milvus version", report.milvus_version or "-"),
        ("Target", report.target or "-"),
        ("Memory limit", format_bytes(report.memory_limit_bytes) if report.memory_limit_bytes else "none"),
        ("Isolation", isolation_text),
        ("Scenario", scenario),
        ("Overrides", ", ".join(f"{k}={fmt_value(v)}" for k, v in _flatten(overrides)) or "none"),
    ]
    config = run.get("milvus_config") or {}
    if config:
        rows.append(("Milvus config", ", ".join(f"{k}={fmt_value(v)}" for k, v in _flatten(config))))
    target = run.get("facts") or {}
    if target.get("image"):  # kind: what was installed, and what the server says it is
        rows.append(("Image", str(target["image"])))
    if target.get("chart"):
        rows.append(("Chart", f"zilliztech/{target['chart']}"))
    if target.get("server_version") or target.get("build_check"):
        check = target.get("build_check") or {}
        rows.append(("Server version", f"{target.get('server_version') or '-'}"
                                       + (f" ({check.get('status')}: {check.get('detail')})" if check else "")))
    if target.get("values_applied"):
        rows.append(("Helm values", f"stored base ({target.get('values_base') or '?'}) + image + run flags; "
                                    "applied values in report.md and run.json"))
    rows += [
        ("Started", fmt_clock(report.started)),
        ("Duration", fmt_seconds(report.duration_s)),
        ("Time to verdict", fmt_seconds(float_or_none(report.summary.get("time_to_verdict_s")))
         + (f" ({report.summary['time_to_verdict_basis']})" if report.summary.get("time_to_verdict_basis") else "")),
        ("Load / verification", phase_times(report.summary)),
        ("Host", ", ".join(host_parts) or "-"),
        ("Harness version", str(run.get("harness_version") or "-")),
        ("Run id", report.run_id),
    ]
    if run.get("command"):
        rows.append(("Command", str(run["command"])))
    return rows


def values_applied(report: RunReport) -> str | None:
    """The Helm values the kind target installed, as YAML (None for other targets)."""
    import yaml

    applied = (report.run.get("facts") or {}).get("values_applied")
    return yaml.safe_dump(applied, sort_keys=False) if isinstance(applied, dict) and applied else None


def scenario_parameters(report: RunReport) -> list[tuple[str, str]]:
    """The scenario's fields (rules flattened to rules.<name>), as (name, value) rows."""
    return [(key, fmt_value(value)) for key, value in _flatten(report.scenario_fields)
            if key not in ("name", "description")]


def component_table(report: RunReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-component table."""
    header = ["Component", "Peak memory", "Limit", "Peak / limit", "Restarts", "OOM kills", "Stalls"]
    rows = []
    for c in report.components:
        share = (f"{100 * c.peak_memory_bytes / c.limit_bytes:.0f} %"
                 if c.peak_memory_bytes is not None and c.limit_bytes else "-")
        limit = format_bytes(c.limit_bytes) if c.limit_bytes else "none"
        rows.append([c.name, format_bytes(c.peak_memory_bytes), limit, share,
                     str(c.restarts), str(c.oom_kills), str(c.stalls)])
    return header, rows


RECOVERY_OUTCOME = {"ready": "ready", "OOMKilled": "OOM-killed while recovering",
                    "Exited": "died while recovering", "restarted": "restarted again",
                    "unfinished": "still recovering when the run ended"}


def recovery_table(report: RunReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the recovery table: one row per restart."""
    header = ["Component", "Restart", "Started", "Outcome", "After", "Peak memory"]
    rows = [[str(p.get("component", "?")), fmt_count(p.get("restart")), f"+{fmt_seconds(report.elapsed(p['start']))}",
             RECOVERY_OUTCOME.get(str(p.get("outcome")), str(p.get("outcome"))), fmt_seconds(p.get("seconds")),
             format_bytes(p.get("peak_memory_bytes"))]
            for p in report.recoveries]
    return header, rows


def lost_batches_text(report: RunReport, limit: int = 20) -> str:
    """The numbers of the batches whose acked rows are missing, the first `limit` of them."""
    batches = [int(b) for b in report.rows.get("lost_batches") or []]
    if not batches:
        return "none"
    text = ", ".join(str(b) for b in batches[:limit])
    return text + (f" and {len(batches) - limit} more" if len(batches) > limit else "")


def rows_table(report: RunReport) -> list[tuple[str, str]]:
    """Rows planned, acked, failed, verified, lost, and which batches were lost."""
    rows = report.rows
    verified = rows.get("verified")
    return [
        ("Planned", fmt_count(rows.get("planned"))),
        ("Acked", fmt_count(rows.get("acked"))),
        ("Failed", fmt_count(rows.get("failed"))),
        ("Verified", fmt_count(verified) if verified is not None else "not verified"),
        ("Lost", fmt_count(rows.get("lost"))),
        ("Lost batches", lost_batches_text(report)),
        *([("Present twice", f"{fmt_count(rows['duplicated'])} rows of {len(rows.get('duplicated_batches', []))} "
            "retried batches (applied by the server before the retry too)")] if rows.get("duplicated") else []),
        ("Check", check_text(rows)),
    ]


def check_text(rows: Mapping[str, Any]) -> str:
    """Which check of the acked rows ran and why (summary.json's rows.check)."""
    check = rows.get("check")
    if not isinstance(check, Mapping):
        return "pk-ranges" if rows.get("verified") is not None else "none"
    return f"{check.get('check')}: {check.get('why')}"


def inserts_table(report: RunReport) -> list[tuple[str, str]]:
    """Insert count, throughput, latency percentiles, memory growth and the first OOM kill."""
    inserts = report.inserts
    latency = inserts.get("latency_ms") or {}
    rows = [
        ("Inserts", fmt_count(inserts.get("count", len(report.acks) if report.acks else None))),
        ("Failed inserts", fmt_count(inserts.get("failures", sum(not a.ok for a in report.acks)
                                                 if report.acks else None))
         + (f" ({inserts['failures_while_down']:,} while the server was down)"
            if inserts.get("failures_while_down") else "")),
        ("Throughput", f"{inserts['rows_per_s']:,.0f} rows/s"
         if isinstance(inserts.get("rows_per_s"), (int, float)) else "-"),
        ("Concurrency", ramp.describe(report.summary.get("concurrency")) or "-"),
        ("Latency p50", fmt_ms(latency.get("p50"))),
        ("Latency p95", fmt_ms(latency.get("p95"))),
        ("Latency p99", fmt_ms(latency.get("p99"))),
        ("Latency max", fmt_ms(latency.get("max"))),
    ]
    growth = report.summary.get("memory_growth_mb_per_100k_rows")
    growth_text = f"{growth:,.0f} MB per 100k rows" if isinstance(growth, (int, float)) else "-"
    rows.append(("Memory growth", growth_text))
    first = report.summary.get("first_oom")
    if isinstance(first, Mapping) and first.get("t") is not None:
        at = fmt_seconds(report.elapsed(float(first["t"])))
        rows.append(("First OOM kill", f"{first.get('component', '?')} at +{at} after "
                                       f"{fmt_count(first.get('rows_acked_before'))} acked rows"))
    return rows


#: Files of a run directory worth linking from a report, in this order, with what they are.
RUN_FILES = (
    ("locust.html", "Locust's own report"),
    ("summary.json", "verdict, reasons and figures"),
    ("run.json", "inputs: scenario, target, limit, host"),
    ("samples.jsonl", "memory samples"),
    ("events.jsonl", "events"),
    ("acks.jsonl", "every insert attempt"),
    ("locust_stats.csv", "Locust stats"),
    ("locust_stats_history.csv", "Locust stats over time"),
    ("locust_failures.csv", "Locust failures"),
    ("junit.xml", "JUnit result for CI"),
    ("report.md", "this report in Markdown"),
    ("logs", "server and harness logs"),
)

#: Written by render_report itself, so always linked.
RENDERED = ("report.html", "report.md", "junit.xml")


def run_files(report: RunReport, exclude: str) -> list[tuple[str, str]]:
    """(name, what it is) of the run's files worth linking from `exclude`'s page."""
    out = [("report.html", "charts and tables")]
    out += [(name, what) for name, what in RUN_FILES if name in RENDERED or report.existing(name)]
    return [(name, what) for name, what in out if name != exclude]
