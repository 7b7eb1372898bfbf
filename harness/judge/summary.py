"""summary.json: the figures of one run, computed from its run directory's files."""

from __future__ import annotations

import bisect as _bisect
from typing import Any

import numpy as np

from harness.judge.memory_split import memory_split_summary
from harness.judge.recovery import recovery_phases
from harness.load.ramp import concurrency
from harness.rundir import RunDir, read_jsonl
from harness.watch.sources import finest_sources, source_kind

_INJECTED = "injected"


def batch_outcomes(acks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The last attempt of each batch (a retried batch's earlier failures do not count)."""
    last: dict[int, dict[str, Any]] = {}
    for ack in acks:
        last[ack["batch"]] = ack
    return last


def acked_batches(acks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((a for a in batch_outcomes(acks).values() if a["ok"]), key=lambda a: a["batch"])


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 1), "p95": round(float(np.percentile(arr, 95)), 1),
            "p99": round(float(np.percentile(arr, 99)), 1), "max": round(float(arr.max()), 1)}


def rows_acked_by(acks_ok: list[dict[str, Any]], t: float) -> int:
    """Rows acknowledged at or before time t."""
    return sum(a["rows"] for a in acks_ok if a["t"] <= t)


def memory_growth(samples: list[dict[str, Any]], acks_ok: list[dict[str, Any]],
                  until: float | None) -> float | None:
    """MB (10^6 bytes) of memory per 100k rows acked: the slope of a straight-line fit of the
    summed component memory against rows acked, up to the first OOM kill."""
    if len(acks_ok) < 3:
        return None
    ack_times = [a["t"] for a in sorted(acks_ok, key=lambda a: a["t"])]
    cumulative = np.cumsum([a["rows"] for a in sorted(acks_ok, key=lambda a: a["t"])])
    xs, ys = [], []
    for s in samples:
        if s.get("memory_bytes") is None or (until is not None and s["t"] > until):
            continue
        if s["t"] < ack_times[0] or s["t"] > ack_times[-1]:
            continue
        i = _bisect.bisect_right(ack_times, s["t"])
        xs.append(int(cumulative[i - 1]) if i else 0)
        ys.append(s["memory_bytes"])
    if len(set(xs)) < 3:
        return None
    slope = float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])
    return round(slope * 100_000 / 1e6, 1)


def death_ref(event: dict[str, Any]) -> dict[str, Any]:
    """What a lost-row finding says about the death it followed."""
    return {"type": event["type"], "t": event["t"], "component": event["component"],
            "injected": bool(event.get("data", {}).get("injected"))}


def describe_death(ref: dict[str, Any]) -> str:
    """"standalone OOM kill", "datanode exit", "standalone injected kill"."""
    kind = ("injected kill" if ref.get("injected")
            else {"OOMKilled": "OOM kill", "Exited": "exit"}.get(ref["type"], ref["type"]))
    return f"{ref.get('component', '')} {kind}".strip()


def lost_after_deaths(missing_by_batch: dict[int, int], acks_ok: list[dict[str, Any]],
                      events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lost batches and their missing rows, grouped by the first death (OOM kill or exit)
    after each was acked; a group with death None lost rows with no death after them."""
    deaths = sorted((e for e in events if e["type"] in ("OOMKilled", "Exited")), key=lambda e: e["t"])
    acked_at = {a["batch"]: a for a in acks_ok}
    groups: dict[float | None, dict[str, Any]] = {}
    for k, missing in sorted(missing_by_batch.items()):
        ack = acked_at.get(k)
        death = next((e for e in deaths if ack is not None and e["t"] > ack["t"]), None)
        key = death["t"] if death else None
        group = groups.setdefault(key, {"death": death_ref(death) if death else None,
                                        "batches": [], "rows": 0})
        group["batches"].append(k)
        group["rows"] += missing
    return sorted(groups.values(), key=lambda g: g["death"]["t"] if g["death"] else float("inf"))


def _span(begin: float | None, end: float | None) -> float | None:
    """Seconds from begin to end, None unless both happened."""
    return round(end - begin, 1) if begin is not None and end is not None else None


def _new_component() -> dict[str, Any]:
    return {"peak_memory_bytes": 0, "limit_bytes": None, "restarts": 0, "oom_kills": 0, "stalls": 0,
            "injected_kills": 0, "watch_gaps": 0}


def compute(run_dir: RunDir, *, run_id: str, facts: dict[str, Any], scenario: dict[str, Any],
            started: float, ended: float, verification: dict[str, Any], status: str,
            time_to_verdict: float | None) -> dict[str, Any]:
    """Everything summary.json holds except the verdict and reasons (added by the caller)."""
    samples = list(read_jsonl(run_dir.samples))
    events = list(read_jsonl(run_dir.events))
    acks = list(read_jsonl(run_dir.acks))
    outcomes = batch_outcomes(acks)
    ok = [a for a in outcomes.values() if a["ok"]]
    failed = [a for a in outcomes.values() if not a["ok"]]
    # The watcher samples through verification too, with the embedded server's limit lifted:
    # the peak is the load's, and what the check after it took is kept apart.
    verify_started = next((e["t"] for e in events if e["type"] == "VerifyStarted"), None)
    components: dict[str, dict[str, Any]] = {}
    load_stop = next((e["t"] for e in events if e["type"] == "LoadStopped"), None)
    finest = finest_sources(samples)
    for s in samples:
        c = components.setdefault(s["component"], _new_component())
        if s.get("memory_bytes") is None or source_kind(s.get("source") or "") != finest.get(s["component"]):
            pass
        elif verify_started is not None and s["t"] >= verify_started:
            c["verify_peak_memory_bytes"] = max(c.get("verify_peak_memory_bytes") or 0, s["memory_bytes"])
        elif load_stop is None or s["t"] <= load_stop:
            c["peak_memory_bytes"] = max(c["peak_memory_bytes"], s["memory_bytes"])
        c["limit_bytes"] = s.get("limit_bytes") or c["limit_bytes"]
        c["restarts"] = max(c["restarts"], s.get("restarts") or 0)
    ooms = [e for e in events if e["type"] == "OOMKilled" and e.get("data", {}).get("source") != _INJECTED]
    for e in events:
        if e["component"] == "harness":
            continue
        c = components.setdefault(e["component"], _new_component())
        if e in ooms:
            c["oom_kills"] += 1
            if c["oom_kills"] == 1:
                c["rows_acked_before_first_oom"] = rows_acked_by(ok, e["t"])
        elif e["type"] == "Exited" and e.get("data", {}).get("injected"):
            c["injected_kills"] += 1
        elif e["type"] == "MemoryStall":
            c["stalls"] += 1
        elif e["type"] == "WatchGap":
            c["watch_gaps"] += 1
        elif e["type"] == "Restarted":
            c["restarts"] = max(c["restarts"], e.get("data", {}).get("restarts", c["restarts"]))
    for name, c in components.items():
        # The split just before the component's first death, or at the end of the load.
        death = next((e["t"] for e in events if e["component"] == name and e["type"] in ("OOMKilled", "Exited")),
                     None)
        split = memory_split_summary([s for s in samples if s["component"] == name],
                                     death if death is not None else (verify_started or load_stop))
        if split is not None:
            c["memory_split"] = split
    first_oom = None
    if ooms:
        first_oom = {"t": ooms[0]["t"], "component": ooms[0]["component"],
                     "rows_acked_before": rows_acked_by(ok, ooms[0]["t"])}
    load_start = next((e["t"] for e in events if e["type"] == "LoadStarted"), None)
    attempts = len(acks)
    acked_rows = sum(a["rows"] for a in ok)
    last_ack = max((a["t"] for a in ok), default=None)
    rate = acked_rows / (last_ack - load_start) if load_start and last_ack and last_ack > load_start else 0.0
    load_stopped = next((e["t"] for e in events if e["type"] == "LoadStopped"), None)
    verify_finished = next((e["t"] for e in events if e["type"] == "VerifyFinished"), None)
    return {
        "run_id": run_id,
        "status": status,
        "started": started,
        "ended": ended,
        "duration_s": round(ended - started, 1),
        "time_to_verdict_s": round(time_to_verdict, 1) if time_to_verdict is not None else None,
        "load_s": _span(load_start, load_stopped),
        "verify_s": _span(verify_started, verify_finished),
        # From the end of the load to the end of the run (the target stopped; reports follow).
        "after_load_s": _span(load_stopped, ended),
        "target": facts.get("target"),
        "milvus_version": facts.get("milvus_version"),
        "scenario": scenario["name"],
        "memory_limit_bytes": facts.get("memory_limit_bytes"),
        "isolation": facts.get("isolation"),
        "rows": {
            "planned": scenario["total_rows"],
            "acked": acked_rows,
            "failed": sum(a["rows"] for a in failed),
            "verified": verification.get("verified"),
            "lost": verification.get("lost", 0),
            "lost_batches": verification.get("lost_batches", []),
            "lost_after": lost_after_deaths({int(k): n for k, n in verification.get("missing_by_batch", {}).items()},
                                            ok, events),
            "checked_after_restarts": [{"t": e["t"], **e.get("data", {})} for e in events
                                       if e["type"] == "RowsChecked"],
            **({"verify_note": verification["note"]} if verification.get("note") else {}),
            **({"check": verification["check"]} if verification.get("check") else {}),
            **({"persisted": verification["persisted"]} if "persisted" in verification else {}),
            **({"count_queries": verification["count_queries"]} if "count_queries" in verification else {}),
            **({key: verification[key] for key in ("duplicated", "duplicated_batches")} if "duplicated" in verification else {}),
        },
        "components": components,
        "first_oom": first_oom,
        "crashes": [{"t": e["t"], "component": e["component"], "line": e["data"]["crash"].get("line", "")}
                    for e in events if e["type"] == "Exited" and isinstance(e.get("data", {}).get("crash"), dict)],
        "verify_started": verify_started,
        "inserts": {
            "count": attempts,
            "failures": sum(1 for a in acks if not a["ok"]),
            "failures_while_down": sum(1 for a in acks if not a["ok"] and a.get("server_down")),
            "rows_per_s": round(rate, 1),
            "latency_ms": _percentiles([a["latency_ms"] for a in acks if a["ok"]]),
        },
        "concurrency": concurrency(run_dir.ramp, scenario.get("users")),
        "recoveries": recovery_phases(events, samples, ended),
        "memory_growth_mb_per_100k_rows": memory_growth(
            [s for s in samples if source_kind(s.get("source") or "") == finest.get(s["component"])],
            ok, ooms[0]["t"] if ooms else None),
    }
