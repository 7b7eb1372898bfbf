"""What the memory tab shows of one run directory, read incrementally from its files (RunView).

The numbers are those of samples.jsonl, events.jsonl and acks.jsonl as written; the verdict
is summary.json's once it exists, else the scenario's rules applied to the figures so far.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from harness.judge.summary import compute
from harness.judge.verdict import judge
from harness.rundir import SCHEMA_VERSION, RunDir, read_json
from harness.run.jsonl_tail import AckTally, JsonlTail
from harness.scenario import model as scenarios
from harness.watch import events

#: Events the memory tab lists (samples carry the rest).
SHOWN_EVENTS = (events.READY, events.OOM_KILLED, events.MEMORY_STALL, events.EXITED, events.RESTARTED,
                events.UNREACHABLE, events.LOAD_STARTED, events.LOAD_STOPPED, events.INJECTED, events.WATCH_GAP,
                events.ROWS_CHECKED, events.CRASH_LOOP, events.NOT_RECOVERED)
_LIVE_VERDICT_EVERY_S = 5.0


def _sample_fields(sample: dict[str, Any]) -> dict[str, Any]:
    """A samples.jsonl line as the tab gets it: every number as written, minus `component`
    (the grouping key) and the bulky Prometheus `metrics`."""
    return {k: v for k, v in sample.items() if k not in ("component", "metrics")}


class RunView:
    """What the memory tab shows of one run directory, read incrementally from its files.

    The numbers are those of samples.jsonl, events.jsonl and acks.jsonl as written; the
    verdict is summary.json's once it exists, else the rules applied to the figures so far.
    """

    def __init__(self, path: Path) -> None:
        self.run_dir = RunDir(Path(path))
        self._samples = JsonlTail(self.run_dir.samples)
        self._events = JsonlTail(self.run_dir.events)
        self.acks = AckTally(self.run_dir.acks)
        self._lock = threading.Lock()
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._live_verdict: tuple[tuple[int, int, int], float, dict[str, Any]] | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.path.name

    def poll(self) -> None:
        with self._lock:
            for sample in self._samples.poll():
                self.samples.setdefault(sample["component"], []).append(_sample_fields(sample))
            self.events.extend(self._events.poll())
            self.acks.poll()

    @property
    def acked_rows(self) -> int:
        return self.acks.acked_rows

    def progress(self) -> int:
        """Insert attempts settled so far (the stall detector's notion of progress)."""
        return self.acks.settled

    def _inputs(self) -> dict[str, Any]:
        try:
            return read_json(self.run_dir.run_json)
        except (OSError, ValueError):
            return {}

    def _summary(self) -> dict[str, Any] | None:
        try:
            return read_json(self.run_dir.summary)
        except (OSError, ValueError):
            return None

    def _verdict(self, inputs: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
        if summary is not None:
            return {"value": summary.get("verdict"), "final": True, "reasons": summary.get("reasons", []),
                    "status": summary.get("status")}
        # Judged again when the figures change (and now and then for the latency rules), so the
        # reasons never lag the rows shown next to them.
        key = (self.acks.acked_rows, self.acks.failed, len(self.events))
        cached = self._live_verdict
        if cached and cached[0] == key and time.monotonic() - cached[1] < _LIVE_VERDICT_EVERY_S:
            return cached[2]
        verdict = self._judge_so_far(inputs)
        self._live_verdict = (key, time.monotonic(), verdict)
        return verdict

    def _judge_so_far(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The scenario's rules applied to the figures so far (the acked rows are not verified yet)."""
        if not self.acks.acked_rows:
            return {"value": None, "final": False, "reasons": ["waiting for the first acknowledged insert"]}
        fields = inputs.get("scenario", {}).get("fields")
        if not fields:
            return {"value": None, "final": False, "reasons": []}
        scenario = scenarios.from_mapping(fields, default_name=fields.get("name", "custom"))
        figures = compute(self.run_dir, run_id=self.run_id, facts=inputs.get("facts", {}), scenario=fields,
                          started=inputs.get("started", time.time()), ended=time.time(),
                          verification={"verified": None, "note": "not verified until the load stops"},
                          status="RUNNING", time_to_verdict=None)
        verdict, reasons, _rules = judge(scenario.rules, figures, self.events)
        return {"value": verdict.value, "final": False, "reasons": reasons}

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """The run as the tab draws it; with `since`, only the samples newer than that."""
        self.poll()
        inputs = self._inputs()
        summary = self._summary()
        with self._lock:
            fields = inputs.get("scenario", {}).get("fields", {})
            facts = inputs.get("facts", {})
            newer = (lambda t: t > since) if since is not None else (lambda t: True)
            components: dict[str, Any] = {}
            for name, samples in sorted(self.samples.items()):
                measured = [s["memory_bytes"] for s in samples if s.get("memory_bytes") is not None]
                components[name] = {
                    "samples": [s for s in samples if newer(s["t"])],
                    "count": len(samples),
                    "latest": samples[-1] if samples else None,
                    "peak_memory_bytes": max(measured) if measured else None,
                    "limit_bytes": next((s["limit_bytes"] for s in reversed(samples) if s.get("limit_bytes")), None),
                    "restarts": max((s.get("restarts") or 0 for s in samples), default=0),
                    "oom_kills": sum(1 for e in self.events
                                     if e["component"] == name and e["type"] == events.OOM_KILLED),
                }
            load_started = next((e["t"] for e in self.events if e["type"] == events.LOAD_STARTED), None)
            load_stopped = next((e for e in self.events if e["type"] == events.LOAD_STOPPED), None)
            acked_rows, series = self.acks.acked_rows, self.acks.series
            last_ack = series[-1][0] if series else None
            rate = (acked_rows / (last_ack - load_started)
                    if load_started and last_ack and last_ack > load_started else 0.0)
            snapshot = {
                "run_id": self.run_id,
                "run_dir": str(self.run_dir.path.resolve()),
                "scenario": {k: fields.get(k) for k in ("name", "total_rows", "batch_rows", "shards",
                                                         "partitions", "users", "collection")},
                "target": {k: facts.get(k, inputs.get(k)) for k in ("target", "milvus_version", "memory_limit_bytes",
                                                                     "isolation", "address")},
                "started": inputs.get("started"),
                "load_started": load_started,
                "load_stopped": load_stopped["t"] if load_stopped else None,
                "stop_reason": load_stopped["detail"] if load_stopped else None,
                "rows": {"planned": fields.get("total_rows"), "acked": acked_rows,
                         "failed_inserts": self.acks.failed, "rows_per_s": round(rate, 1)},
                "acked": [list(a) for a in series],  # small: one point per batch
                "components": components,
                "events": [e for e in self.events if e["type"] in SHOWN_EVENTS],
            }
        snapshot["verdict"] = self._verdict(inputs, summary)
        snapshot["report"] = report_links(self.run_dir) if summary is not None else None
        return snapshot


def memory_answer(*, phase: str, message: str, facts: dict[str, Any], scenario: scenarios.Scenario,
                  latest: dict[str, Any], view: RunView | None, since: float | None,
                  finished: list[dict[str, Any]]) -> dict[str, Any]:
    """The memory tab's data: the session's phase, the target, the scenario, each component's
    latest sample, the current (or last) run's view since `since`, and the finished runs."""
    samples = {name: s.to_json() for name, s in sorted(latest.items())}
    for sample in samples.values():
        sample.pop("metrics", None)
    return {
        "schema_version": SCHEMA_VERSION,
        "now": time.time(),
        "phase": phase,
        "message": message,
        "target": {k: facts.get(k) for k in ("target", "milvus_version", "memory_limit_bytes", "isolation",
                                              "address", "restart_policy")},
        "scenario": {k: getattr(scenario, k) for k in ("name", "total_rows", "batch_rows", "shards",
                                                       "partitions", "users")},
        "latest": samples,
        "run": view.snapshot(since) if view else None,
        "runs": finished,
    }


def report_links(run_dir: RunDir) -> dict[str, str]:
    """The run's report files, as paths relative to the report directory."""
    names = {"html": "report.html", "md": "report.md", "summary": "summary.json", "junit": "junit.xml",
             "locust": "locust.html"}
    return {key: f"{run_dir.path.name}/{name}" for key, name in names.items() if (run_dir.path / name).exists()}
