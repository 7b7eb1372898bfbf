"""The verdict of a run: PASS, FAIL or INCONCLUSIVE, and its exit code (docs/design.md, "Contracts")."""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass
from typing import Any

from harness.errors import ExitCode
from harness.scenario.model import ALL_ROLES, MILVUS_ROLES, Rules
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


def role_of(component: str) -> str:
    """The Milvus role of a watched series: 'streamingnode-2' and 'streamingnode/sidecar'
    are streaming nodes (see harness.watch.kubernetes for how series are named)."""
    return re.sub(r"-\d+$", "", component.split("/", 1)[0])


def judge(rules: Rules, summary: dict[str, Any], events: list[dict[str, Any]]) -> tuple[Verdict, list[str], list[RuleResult]]:
    """Apply the scenario's rules to a run's summary figures and events.

    INCONCLUSIVE when no insert ever succeeded (nothing was tested); else FAIL when any rule
    broke, each broken rule giving one reason; else INCONCLUSIVE when a Milvus component that
    is not under test (rules.under_test) died or stalled, or when on a cluster (kind,
    external) the acked rows could not be checked at all; else PASS.
    """
    rows = summary["rows"]
    under = {n: c for n, c in summary["components"].items() if rules.covers(role_of(n))}
    outside = [e for e in events if e["component"] not in under]
    events = [e for e in events if e["component"] in under or e["component"] == "harness"]
    components: dict[str, dict[str, Any]] = under
    scope = "component" if ALL_ROLES in rules.under_test else "component under test"
    # A server under test that cannot recover at its limit failed whatever else was measured.
    # A restart that stays alive but never ready is the same finding as a loop of them.
    loops = [e for e in events if e["type"] in ("CrashLoop", "NotRecovered")]
    checked: list[RuleResult] = [RuleResult("no crash loop", not loops,
                                            loops[0]["detail"] if loops else f"no {scope} crash-looped")]
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
            overall = summary.get("first_oom") or {}
            before = comp.get("rows_acked_before_first_oom",
                              overall.get("rows_acked_before", 0)
                              if overall.get("component", first["component"]) == first["component"] else 0)
            pressed = " under injected memory pressure" if first.get("data", {}).get("injected_pressure") else ""
            message = (f"{first['component']} OOM-killed{pressed} at {_clock(first['t'])}{_during(first, summary)} after "
                       f"{before:,} acked rows; peak "
                       f"{format_bytes(comp.get('peak_memory_bytes'))} of {format_bytes(comp.get('limit_bytes'))}"
                       + (f" ({len(ooms)} OOM kills in all)" if len(ooms) > 1 else ""))
            checked.append(RuleResult("no OOM kill", False, message))
        else:
            checked.append(RuleResult("no OOM kill", True, f"no {scope} was OOM-killed"))
    if rules.fail_on_restart:
        # Restarts after an injected kill are the experiment, not a finding.
        restarted = {n: c["restarts"] - c.get("injected_kills", 0) for n, c in components.items()
                     if c.get("restarts", 0) - c.get("injected_kills", 0) > 0}
        exits = [e for e in events if e["type"] == "Exited" and not e.get("data", {}).get("injected")]
        if restarted or exits:
            parts = [f"{n} restarted {r} time{'s' if r != 1 else ''}" for n, r in restarted.items()]
            parts += [f"{e['component']} exited at {_clock(e['t'])}{_during(e, summary)} ({e['detail']})"
                      for e in exits[:3]]
            checked.append(RuleResult("no restart", False, "; ".join(parts)))
        else:
            checked.append(RuleResult("no restart", True, f"no {scope} restarted"))
    if rules.fail_on_stall:
        stalls = [e for e in events if e["type"] == "MemoryStall"]
        if stalls:
            s = stalls[0]
            checked.append(RuleResult("no memory stall", False,
                                      f"{s['component']} stalled at its memory limit at {_clock(s['t'])}"
                                      f"{_during(s, summary)}: {s['detail']}"))
        else:
            checked.append(RuleResult("no memory stall", True, "memory never stalled at the limit"))
    by_count = (rows.get("check") or {}).get("check") == "rows"
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
        elif rows["lost"] and by_count:
            checked.append(RuleResult("no acked row lost", False,
                                      f"at least {rows['lost']:,} of {rows['acked']:,} acked rows missing: "
                                      f"{rows.get('persisted', 0):,} rows persisted after the flush (rows check: "
                                      "a lower bound, no batch named)"))
        elif rows["lost"]:
            lost_batches = rows.get("lost_batches", [])
            groups = rows.get("lost_after") or [{"death": None, "batches": lost_batches, "rows": rows["lost"]}]
            parts = [f"{len(g['batches'])} batch{'es' if len(g['batches']) != 1 else ''}, "
                     f"{g['rows']:,} acked rows"
                     + (f" missing after the {describe_death(g['death'])} at {_clock(g['death']['t'])}" if g["death"]
                        else " missing though nothing died after they were acked")
                     + f" ({_batch_list(g['batches'])})" for g in groups]
            checked.append(RuleResult("no acked row lost", False, "; ".join(parts)))
        elif by_count:
            checked.append(RuleResult("no acked row lost", True,
                                      f"{rows.get('persisted', 0):,} rows persisted after the flush, "
                                      f"{rows['acked']:,} acked (rows check)"))
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
    cluster = _not_under_test(rules, summary, outside)
    if cluster:
        checked.append(RuleResult("components not under test held", False, "; ".join(cluster)))
    failed = [r.message for r in checked if not r.passed and not r.message.startswith("acked rows could not")
              and r.name != "components not under test held"]
    if failed:
        return Verdict.FAIL, failed + cluster, checked
    if cluster:
        return Verdict.INCONCLUSIVE, cluster, checked
    watched = sorted(n for n in summary["components"] if role_of(n) in MILVUS_ROLES)
    if watched and not any(rules.covers(role_of(n)) for n in watched):
        reason = (f"no component under test ({', '.join(rules.under_test)}) was watched, so its health was "
                  f"not checked; watched: {', '.join(watched)}")
        return Verdict.INCONCLUSIVE, [reason], checked
    if rows.get("verified") is None and rules.fail_on_lost_rows:
        # The lost-row rule did not run, on any target: a PASS would claim a check that never ran.
        reason = f"the acked rows could not be checked: {rows.get('verify_note', 'no answer')}"
        return Verdict.INCONCLUSIVE, [reason], checked
    fast = (rows.get("check") or {}).get("fast")
    return Verdict.PASS, [f"{rows['acked']:,} rows inserted and counted in the persisted segments (rows check"
                          f"{', fast path: nothing was in doubt' if fast else ''}) with no rule broken"
                          if rows.get("verified") is not None and by_count else
                          f"{rows['acked']:,} rows inserted and verified with no rule broken"
                          if rows.get("verified") is not None else
                          f"{rows['acked']:,} rows inserted with no rule broken (the lost-row rule is off)"], checked


#: Rule names whose failure is decided by an event during the run, not by the check after it.
_EVENT_RULES = {"no crash loop": ("CrashLoop", "NotRecovered"), "no OOM kill": ("OOMKilled",), "no restart": ("Exited",),
                "no memory stall": ("MemoryStall",)}


def decided_at(verdict: Verdict, rules: list[RuleResult], events: list[dict[str, Any]],
               verified_at: float | None) -> tuple[float | None, str]:
    """When the verdict could no longer change, and why then: the first event that broke a
    rule of its own (an OOM kill, an exit, a stall, a crash loop) for a FAIL decided by one;
    else the end of the check of the acked rows (`verified_at`, None if it never ran)."""
    if verdict == Verdict.FAIL:
        kinds = {kind for r in rules if not r.passed for kind in _EVENT_RULES.get(r.name, ())}
        first = next((e for e in sorted(events, key=lambda e: e["t"]) if e["type"] in kinds
                      and not (e["type"] == "Exited" and e.get("data", {}).get("injected"))), None)
        if first is not None:
            return first["t"], f"the first {first['type']} ({first['component']}) failed the run"
    if verified_at is None:
        return None, "the acked rows were never checked"
    return verified_at, "the end of the check of the acked rows"


def _not_under_test(rules: Rules, summary: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """One reason per Milvus component outside rules.under_test that was OOM-killed, exited,
    stalled or restarted (as far as the rules check each), naming its first such event."""
    reasons = []
    for name, comp in summary["components"].items():
        if rules.covers(role_of(name)):
            continue
        own = [e for e in events if e["component"] == name]
        first = None
        for e in own:
            if ((rules.fail_on_oom and e["type"] == "OOMKilled")
                    or (rules.fail_on_stall and e["type"] == "MemoryStall")
                    or (rules.fail_on_restart and e["type"] == "Exited" and not e.get("data", {}).get("injected"))):
                first = e
                break
        restarts = comp.get("restarts", 0) - comp.get("injected_kills", 0)
        if first is not None:
            what = {"OOMKilled": "OOM-killed", "MemoryStall": "stalled at its memory limit",
                    "Exited": "exited"}[first["type"]]
            text = f"{name} {what} at {_clock(first['t'])}"
            if first["type"] == "Exited":
                text += f" ({first.get('detail', '')})"
        elif rules.fail_on_restart and restarts > 0:
            text = f"{name} restarted {restarts} time{'s' if restarts != 1 else ''}"
        else:
            continue
        if first is not None:
            text += _during(first, summary)
        reasons.append(f"{text} (not under test): the cluster, not the component under test, failed")
    return reasons


def _during(event: dict[str, Any], summary: dict[str, Any]) -> str:
    """' during verification' for an event after the load, while the acked rows were checked."""
    started = summary.get("verify_started")
    return " during verification" if started is not None and event["t"] >= started else ""


def _batch_list(batches: list[int]) -> str:
    shown = ", ".join(str(b) for b in batches[:8])
    more = f" and {len(batches) - 8} more" if len(batches) > 8 else ""
    return f"batch{'es' if len(batches) != 1 else ''} {shown}{more}"
