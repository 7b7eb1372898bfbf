"""A run directory loaded into one typed object (RunReport); tables.py formats what the renderers show.

The run may have been killed at any point: any file can be missing or end in a torn line,
summary.json may not exist yet, a component may never have been sampled. Loading never
raises for those; renderers get empty lists and None and say "not recorded".
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.judge.recovery import recovery_phases
from harness.rundir import RunDir, read_jsonl
from harness.watch import events
from harness.watch.events import Event, Sample
from harness.watch.sources import finest_kind, source_kind

#: Event types drawn as vertical markers on the charts, in legend order.
MARKER_TYPES = (events.OOM_KILLED, events.RESTARTED, events.MEMORY_STALL, events.INJECTED, events.CRASH_LOOP,
                events.NOT_RECOVERED)


@dataclass(frozen=True)
class Ack:
    """One insert attempt as the load generator saw it (a line of acks.jsonl)."""

    t: float
    t_start: float
    batch: int
    first_pk: int
    last_pk: int
    rows: int
    ok: bool
    latency_ms: float
    error: str = ""
    worker: str = ""


@dataclass(frozen=True)
class Rule:
    """One rule the verdict checked (summary.json "rules", when the verdict writes them)."""

    name: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class ComponentSummary:
    """One component's line of summary.json "components"."""

    name: str
    peak_memory_bytes: int | None
    limit_bytes: int | None
    restarts: int
    oom_kills: int
    stalls: int


@dataclass
class RunReport:
    """Everything a report shows, loaded once from a run directory."""

    path: Path
    run: dict[str, Any]
    summary: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)

    # -- identity -------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return str(self.summary.get("run_id") or self.run.get("run_id") or self.path.name)

    @property
    def status(self) -> str:
        """FINISHED or ABORTED; a run without summary.json never finished."""
        return str(self.summary.get("status") or ("FINISHED" if self.summary else "ABORTED"))

    @property
    def verdict(self) -> str | None:
        """PASS / FAIL / INCONCLUSIVE, or None when no verdict was written."""
        verdict = self.summary.get("verdict")
        return str(verdict) if verdict else None

    @property
    def banner(self) -> str:
        """What the banner says: the verdict, or ABORTED when the run was cut short."""
        if self.status == "ABORTED":
            return "ABORTED"
        return self.verdict or "ABORTED"

    @property
    def reasons(self) -> list[str]:
        reasons = [str(r) for r in self.summary.get("reasons") or []]
        if not self.summary:
            reasons.append("summary.json was not written: the harness stopped before the verdict.")
        return reasons

    @property
    def scenario_name(self) -> str:
        scenario = self.run.get("scenario")
        if isinstance(scenario, Mapping) and scenario.get("name"):
            return str(scenario["name"])
        return str(self.summary.get("scenario") or scenario or "run")

    @property
    def scenario_fields(self) -> dict[str, Any]:
        scenario = self.run.get("scenario")
        fields = scenario.get("fields") if isinstance(scenario, Mapping) else None
        return dict(fields) if isinstance(fields, Mapping) else {}

    @property
    def scenario_hash(self) -> str | None:
        scenario = self.run.get("scenario")
        value = scenario.get("hash") if isinstance(scenario, Mapping) else None
        return str(value) if value else None

    @property
    def milvus_version(self) -> str | None:
        return _str_or_none(self.summary.get("milvus_version") or self.run.get("milvus_version"))

    @property
    def target(self) -> str | None:
        return _str_or_none(self.summary.get("target") or self.run.get("target"))

    @property
    def memory_limit_bytes(self) -> int | None:
        for source in (self.summary, self.run):
            if source.get("memory_limit_bytes") is not None:
                return _int_or_none(source["memory_limit_bytes"])
        return None

    # -- time -----------------------------------------------------------------------------
    @property
    def started(self) -> float | None:
        value = self.run.get("started", self.summary.get("started"))
        return float_or_none(value)

    @property
    def ended(self) -> float | None:
        return float_or_none(self.summary.get("ended"))

    @property
    def duration_s(self) -> float | None:
        value = float_or_none(self.summary.get("duration_s"))
        if value is None and self.started is not None and self.ended is not None:
            value = self.ended - self.started
        return value

    @property
    def t0(self) -> float:
        """Time zero of every chart: the command's start, else the first thing recorded."""
        if self.started is not None:
            return self.started
        times = [s.t for s in self.samples] + [e.t for e in self.events] + [a.t_start for a in self.acks]
        return min(times) if times else 0.0

    def elapsed(self, t: float) -> float:
        """Seconds since t0."""
        return t - self.t0

    # -- components -----------------------------------------------------------------------
    @property
    def components(self) -> list[ComponentSummary]:
        """Per-component summary lines; from the samples when summary.json has none."""
        raw = self.summary.get("components")
        if isinstance(raw, Mapping) and raw:
            return [_component(str(name), value if isinstance(value, Mapping) else {})
                    for name, value in raw.items()]
        names = self.component_names
        return [self._component_from_files(name) for name in names]

    @property
    def component_names(self) -> list[str]:
        """Every component seen in summary, samples or events, first seen first."""
        names: dict[str, None] = {}
        raw = self.summary.get("components")
        if isinstance(raw, Mapping):
            names.update(dict.fromkeys(str(n) for n in raw))
        names.update(dict.fromkeys(s.component for s in self.samples))
        names.update(dict.fromkeys(e.component for e in self.events if e.type in MARKER_TYPES))
        return list(names)

    def samples_of(self, component: str) -> list[Sample]:
        """The component's samples from its finest memory source (harness.watch.sources)."""
        mine = [s for s in self.samples if s.component == component]
        finest = finest_kind((s.t, s.source, s.memory_bytes) for s in mine)
        return [s for s in mine if finest is None or source_kind(s.source) == finest]

    def limit_of(self, component: str) -> int | None:
        """The component's memory limit: the latest sampled one, else summary's for it.

        The run-wide limit stands in only for a component never sampled: in a cluster it is
        the streaming nodes' limit, not the proxy's.
        """
        samples = self.samples_of(component)
        for sample in reversed(samples):
            if sample.limit_bytes:
                return sample.limit_bytes
        raw = self.summary.get("components")
        entry = raw.get(component) if isinstance(raw, Mapping) else None
        if isinstance(entry, Mapping) and entry.get("limit_bytes"):
            return _int_or_none(entry["limit_bytes"])
        return None if samples else self.memory_limit_bytes

    def _component_from_files(self, name: str) -> ComponentSummary:
        samples = self.samples_of(name)
        memories = [s.memory_bytes for s in samples if s.memory_bytes is not None]
        own = [e for e in self.events if e.component == name]
        return ComponentSummary(
            name=name,
            peak_memory_bytes=max(memories) if memories else None,
            limit_bytes=self.limit_of(name),
            restarts=max((s.restarts for s in samples), default=0),
            oom_kills=sum(e.type == events.OOM_KILLED for e in own),
            stalls=sum(e.type == events.MEMORY_STALL for e in own),
        )

    # -- rows and inserts -----------------------------------------------------------------
    @property
    def rows(self) -> dict[str, Any]:
        """summary "rows", completed from acks.jsonl when summary.json is missing."""
        rows = dict(self.summary.get("rows") or {})
        if "acked" not in rows and self.acks:
            rows["acked"] = sum(a.rows for a in self.acks if a.ok)
            rows["failed"] = sum(a.rows for a in self.acks if not a.ok)
        return rows

    @property
    def inserts(self) -> dict[str, Any]:
        return dict(self.summary.get("inserts") or {})

    @property
    def rules(self) -> list[Rule] | None:
        """The rules the verdict checked, or None when summary.json does not list them."""
        raw = self.summary.get("rules")
        if not isinstance(raw, list):
            return None
        return [Rule(name=str(r.get("name", f"rule {i + 1}")), passed=bool(r.get("passed")),
                     message=str(r.get("message") or ""))
                for i, r in enumerate(raw) if isinstance(r, Mapping)]

    def acked_series(self) -> tuple[list[float], list[int]]:
        """Cumulative rows acked against answer time (epoch), ordered by time."""
        times: list[float] = []
        totals: list[int] = []
        total = 0
        for ack in sorted((a for a in self.acks if a.ok), key=lambda a: a.t):
            total += ack.rows
            times.append(ack.t)
            totals.append(total)
        return times, totals

    def rows_acked_at(self, times: Iterable[float]) -> list[int]:
        """Rows acked by each of `times` (epoch), for the memory-against-rows view."""
        ack_times, totals = self.acked_series()
        out = []
        for t in times:
            i = bisect.bisect_right(ack_times, t)
            out.append(totals[i - 1] if i else 0)
        return out

    @property
    def recoveries(self) -> list[dict[str, Any]]:
        """Each restart's recovery (summary "recoveries"; computed from the files for older runs)."""
        phases = self.summary.get("recoveries")
        if isinstance(phases, list):
            return [p for p in phases if isinstance(p, Mapping) and p.get("start") is not None]
        return recovery_phases([e.to_json() for e in self.events], [s.to_json() for s in self.samples], self.ended)

    @property
    def marker_events(self) -> list[Event]:
        return [e for e in self.events if e.type in MARKER_TYPES]

    # -- files ----------------------------------------------------------------------------
    def existing(self, *names: str) -> list[str]:
        """Those of `names` (files or directories in the run dir) that exist."""
        return [n for n in names if (self.path / n).exists()]


def load_run(run_dir: Path) -> RunReport:
    """Read a run directory into a RunReport; missing or torn files give empty parts."""
    paths = RunDir(Path(run_dir))
    return RunReport(
        path=paths.path,
        run=_read_object(paths.run_json),
        summary=_read_object(paths.summary),
        samples=sorted(_parse_all(read_jsonl(paths.samples), _sample), key=lambda s: s.t),
        events=sorted(_parse_all(read_jsonl(paths.events), _event), key=lambda e: e.t),
        acks=sorted(_parse_all(read_jsonl(paths.acks), _ack), key=lambda a: a.t),
    )


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or unreadable (a killed run)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parse_all(lines: Iterable[dict[str, Any]], parse: Any) -> list[Any]:
    """Parse each line; a line missing its required fields is skipped, not fatal."""
    out = []
    for line in lines:
        try:
            out.append(parse(line))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _sample(d: Mapping[str, Any]) -> Sample:
    metrics = d.get("metrics") or {}
    stat = d.get("memory_stat") or {}
    return Sample(t=float(d["t"]), component=str(d.get("component") or "milvus"),
                  memory_bytes=_int_or_none(d.get("memory_bytes")),
                  limit_bytes=_int_or_none(d.get("limit_bytes")),
                  restarts=int(d.get("restarts") or 0), source=str(d.get("source") or ""),
                  rss_bytes=_int_or_none(d.get("rss_bytes")),
                  metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
                  memory_stat=dict(stat) if isinstance(stat, Mapping) else {})


def _event(d: Mapping[str, Any]) -> Event:
    data = d.get("data") or {}
    return Event(t=float(d["t"]), component=str(d.get("component") or ""), type=str(d["type"]),
                 detail=str(d.get("detail") or ""), data=dict(data) if isinstance(data, Mapping) else {})


def _ack(d: Mapping[str, Any]) -> Ack:
    t = float(d["t"])
    latency = float_or_none(d.get("latency_ms"))
    t_start = float_or_none(d.get("t_start"))
    if latency is None:
        latency = (t - t_start) * 1000 if t_start is not None else math.nan
    if t_start is None:
        t_start = t if math.isnan(latency) else t - latency / 1000
    return Ack(t=t, t_start=t_start,
               batch=int(d.get("batch", -1)), first_pk=int(d.get("first_pk", -1)),
               last_pk=int(d.get("last_pk", -1)), rows=int(d.get("rows") or 0),
               ok=bool(d.get("ok")), latency_ms=latency, error=str(d.get("error") or ""),
               worker=str(d.get("worker") or ""))


def _component(name: str, d: Mapping[str, Any]) -> ComponentSummary:
    return ComponentSummary(name=name, peak_memory_bytes=_int_or_none(d.get("peak_memory_bytes")),
                            limit_bytes=_int_or_none(d.get("limit_bytes")),
                            restarts=int(d.get("restarts") or 0), oom_kills=int(d.get("oom_kills") or 0),
                            stalls=int(d.get("stalls") or 0))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def float_or_none(value: Any) -> float | None:
    """A number from a JSON file as a float; anything else (missing, text) as None."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
