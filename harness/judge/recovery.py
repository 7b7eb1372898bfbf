"""Recovery as a measured phase: each restart's time to Ready, or its death while recovering.

Computed from a run's events and samples alone (so reports of old runs get it too): a phase
starts at a Restarted event and ends at that component's next Ready, death or restart.
"""

from __future__ import annotations

from typing import Any

_DEATHS = ("OOMKilled", "Exited")


def recovery_phases(events: list[dict[str, Any]], samples: list[dict[str, Any]],
                    ended: float | None = None) -> list[dict[str, Any]]:
    """One record per restart: component, restart, start, end, seconds, outcome, peak memory.

    `outcome` is "ready", the death's type ("OOMKilled", "Exited"), "restarted" (restarted again
    with no death seen, as kubelet can between two polls) or "unfinished" (the run ended first).
    """
    ordered = sorted((e for e in events if e.get("component") != "harness"), key=lambda e: e["t"])
    phases: list[dict[str, Any]] = []
    for i, start in enumerate(ordered):
        if start["type"] != "Restarted":
            continue
        component = start["component"]
        end = next((e for e in ordered[i + 1:] if e["component"] == component
                    and e["type"] in ("Ready", "Restarted", *_DEATHS)), None)
        if end is None:
            outcome, end_t = "unfinished", ended
        else:
            outcome = {"Ready": "ready", "Restarted": "restarted"}.get(end["type"], end["type"])
            end_t = end["t"]
        window = [s["memory_bytes"] for s in samples if s.get("component") == component
                  and s.get("memory_bytes") is not None and start["t"] <= s["t"] <= (end_t or float("inf"))]
        phases.append({
            "component": component,
            "restart": start.get("data", {}).get("restarts"),
            "start": start["t"],
            "end": end_t,
            "seconds": round(end_t - start["t"], 1) if end_t is not None else None,
            "outcome": outcome,
            "peak_memory_bytes": max(window) if window else None,
        })
    return phases
