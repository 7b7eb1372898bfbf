"""The verdict of a run: PASS, FAIL or INCONCLUSIVE, and its exit code (docs/design.md, "Contracts")."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from harness.errors import ExitCode
from harness.scenario.model import Rules
from harness.judge.summary import describe_death
from harness.units import format_bytes


class Verdict(str, enum.Enum):
    """What a run concluded; a str so it reads and writes as plain JSON."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def exit_code(self) -> int:
        """0 PASS, 1 FAIL, 125 INCONCLUSIVE (`git bisect run`'s "skip")."""
        return int(ExitCode[self.value])


@dataclass(frozen=True)
class RuleResult:
    """One rule as checked: its name, whether it held, and one sentence with the numbers."""

    name: str
    passed: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def judge(rules: Rules, summary: dict[str, Any], events: list[dict[str, Any]]) -> tuple[Verdict, list[str], list[RuleResult]]:
    """Apply the scenario's rules to a run's summary figures and events.

    INCONCLUSIVE when no insert ever succeeded (nothing was tested); else FAIL when any rule
    broke, each broken rule giving one reason; else PASS.
    """
    rows = summary["rows"]
    components: dict[str, dict[str, Any]] = summary["components"]
    # A server that cannot recover at its limit failed whatever else was measured.
    loops = [e for e in events if e["type"] == "CrashLoop"]
    checked: list[RuleResult] = [RuleResult("no crash loop", not loops,
                                            loops[0]["detail"] if loops else "no component crash-looped")]
    if loops and rows["acked"] == 0:
        return Verdict.FAIL, [loops[0]["detail"]], checked
    if rows["acked"] == 0:
        reason = ("no insert was acknowledged, so nothing was tested"
                  + (f" ({summary['inserts']['failures']} inserts failed)" if summary["inserts"]["failures"]
                     else "; see logs/locust.log"))
        return Verdict.INCONCLUSIVE, [reason], [RuleResult("load", False, reason)]

    if rules.fail_on_oom:
        ooms = [e for e in events if e["type"] == "OOMKilled"]
        if ooms:
            first = ooms[0]
            comp = components.get(first["component"], {})
            before = summary.get("first_oom", {}) or {}
            message = (f"{first['component']} OOM-killed at {_clock(first['t'])} after "
                       f"{before.get('rows_acked_before', 0):,} acked rows; peak "
                       f"{format_bytes(comp.get('peak_memory_bytes'))} of {format_bytes(comp.get('limit_bytes'))}"
                       + (f" ({len(ooms)} OOM kills in all)" if len(ooms) > 1 else ""))
            checked.append(RuleResult("no OOM kill", False, message))
        else:
            checked.append(RuleResult("no OOM kill", True, "no component was OOM-killed"))
    if rules.fail_on_restart:
        # Restarts after an injected kill are the experiment, not a finding.
        restarted = {n: c["restarts"] - c.get("injected_kills", 0) for n, c in components.items()
                     if c.get("restarts", 0) - c.get("injected_kills", 0) > 0}
        exits = [e for e in events if e["type"] == "Exited" and not e.get("data", {}).get("injected")]
        if restarted or exits:
            parts = [f"{n} restarted {r} time{'s' if r != 1 else ''}" for n, r in restarted.items()]
            parts += [f"{e['component']} exited at {_clock(e['t'])} ({e['detail']})" for e in exits[:3]]
            checked.append(RuleResult("no restart", False, "; ".join(parts)))
        else:
            checked.append(RuleResult("no restart", True, "no component restarted"))
    if rules.fail_on_stall:
        stalls = [e for e in events if e["type"] == "MemoryStall"]
        if stalls:
            s = stalls[0]
            checked.append(RuleResult("no memory stall", False,
                                      f"{s['component']} stalled at its memory limit at {_clock(s['t'])}: {s['detail']}"))
        else:
            checked.append(RuleResult("no memory stall", True, "memory never stalled at the limit"))
    if rules.fail_on_lost_rows:
        short_after_restart = [c for c in rows.get("checked_after_restarts", []) if c.get("missing")]
        if rows.get("verified") is None and short_after_restart:
            # The end check could not run; the counts taken after the restarts still show loss.
            c = short_after_restart[0]
            checked.append(RuleResult("no acked row lost", False,
                                      f"at least {c['missing']:,} of {c['acked']:,} acked rows missing after the "
                                      f"{describe_death(c['after'])} at {_clock(c['after']['t'])} (row count after the "
                                      f"restart; the end check could not run: {rows.get('verify_note', 'no answer')})"))
        elif rows.get("verified") is None:
            checked.append(RuleResult("no acked row lost", True,
                                      f"acked rows could not be verified: {rows.get('verify_note', 'server not reachable')}"))
        elif rows["lost"]:
            lost_batches = rows.get("lost_batches", [])
            groups = rows.get("lost_after") or [{"death": None, "batches": lost_batches, "rows": rows["lost"]}]
            parts = [f"{len(g['batches'])} batch{'es' if len(g['batches']) != 1 else ''}, "
                     f"{g['rows']:,} acked rows"
                     + (f" missing after the {describe_death(g['death'])} at {_clock(g['death']['t'])}" if g["death"]
                        else " missing though nothing died after they were acked")
                     + f" ({_batch_list(g['batches'])})" for g in groups]
            checked.append(RuleResult("no acked row lost", False, "; ".join(parts)))
        else:
            checked.append(RuleResult("no acked row lost", True, f"all {rows['acked']:,} acked rows present"))
    if rules.fail_on_unverified and rows.get("verified") is None:
        checked.append(RuleResult("acked rows verified", False,
                                  f"the acked rows could not be verified: {rows.get('verify_note', 'no answer')}"))
    if rules.max_peak_memory_fraction is not None:
        for name, comp in components.items():
            limit, peak = comp.get("limit_bytes"), comp.get("peak_memory_bytes")
            if limit and peak is not None:
                ok = peak <= rules.max_peak_memory_fraction * limit
                checked.append(RuleResult(f"{name} peak memory", ok,
                                          f"{name} peak {format_bytes(peak)} is {peak / limit:.0%} of its "
                                          f"{format_bytes(limit)} limit (bound {rules.max_peak_memory_fraction:.0%})"))
    latency = summary["inserts"]["latency_ms"]
    for rule_value, key in ((rules.max_insert_p50_ms, "p50"), (rules.max_insert_p95_ms, "p95")):
        if rule_value is not None and latency.get(key) is not None:
            ok = latency[key] <= rule_value
            checked.append(RuleResult(f"insert latency {key}", ok,
                                      f"insert latency {key} {latency[key]:,.0f} ms (bound {rule_value:,.0f} ms)"))
    if rules.min_rows_per_s is not None:
        rate = summary["inserts"]["rows_per_s"]
        checked.append(RuleResult("insert throughput", rate >= rules.min_rows_per_s,
                                  f"insert throughput {rate:,.0f} rows/s (bound {rules.min_rows_per_s:,.0f} rows/s)"))
    failed = [r.message for r in checked if not r.passed and not r.message.startswith("acked rows could not")]
    if failed:
        return Verdict.FAIL, failed, checked
    return Verdict.PASS, [f"{rows['acked']:,} rows inserted and verified with no rule broken"
                          if rows.get("verified") is not None else
                          f"{rows['acked']:,} rows inserted with no rule broken"], checked


def _batch_list(batches: list[int]) -> str:
    shown = ", ".join(str(b) for b in batches[:8])
    more = f" and {len(batches) - 8} more" if len(batches) > 8 else ""
    return f"batch{'es' if len(batches) != 1 else ''} {shown}{more}"
