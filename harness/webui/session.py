"""`milvus-harness ui`: Locust's web UI on a real target, with a live "Milvus memory" tab.

The harness process owns what `run` owns: the target, its watcher, the stop rules and every
run directory. Locust runs as its own process with its web UI (gevent stays out of this
one; harness/webui/extension.py is its side). The two talk over a loopback HTTP channel that
only this process serves, guarded by a random token:

    browser --(Locust's web UI, /harness/* routes)--> Locust process
    Locust process --(POST /runs, POST /runs/<id>/stop, GET /state, GET /memory)--> here

Start in the browser: Locust sends the form's scenario fields here; they are validated like
`--set` (a refusal is shown in the form), a fresh run directory and collection are made and
the answer names the run's load.json, which Locust's users then insert. Stop (the Stop
button, the run time, every batch settled, or a stop rule here, which Locust sees on /state):
Locust writes its stats into the run directory and says so; this process verifies the acked
rows and writes summary.json and the reports exactly as `run` does (runner.finalize_run).
The embedded server is then started afresh, so every run starts from a new server under its
limit (verification lifts it). Ctrl-C ends Locust, finalizes a run in progress as ABORTED and
stops the target.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from rich.console import Console

from harness.load import collection
from harness.run import inject
from harness.scenario import model as scenarios
from harness.errors import ExitCode, HarnessError, Interrupted, TargetError, UsageError
from harness.rundir import SCHEMA_VERSION, RunDir, read_json, write_json
from harness.run.lifecycle import (RunOptions, RunResult, _new_run_id, _raise_on_sigterm, finalize_run, make_target,
                            prepare, run_inputs, stop_rule, verify_after_load)
from harness.judge.summary import compute
from harness.targets.protocol import Endpoint
from harness.units import format_bytes
from harness.judge.verdict import judge
from harness.watch import events
from harness.watch.events import Event, Recorder, RunContext, Sample
from harness.watch.stall import StallDetector
from harness.load.dispenser import ServerDown
from harness.run.recovery import CrashLoopDetector, DownGate
from harness.webui import CREDENTIALS_ENV, FORM_FIELDS, TAB_KEY, TOKEN_ENV

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).parent.parent / "locustfiles" / "ui.py"
#: Events the memory tab lists (samples carry the rest).
SHOWN_EVENTS = (events.READY, events.OOM_KILLED, events.MEMORY_STALL, events.EXITED, events.RESTARTED,
                events.UNREACHABLE, events.LOAD_STARTED, events.LOAD_STOPPED, events.INJECTED, events.WATCH_GAP,
                events.ROWS_CHECKED)
_LIVE_VERDICT_EVERY_S = 5.0
#: --stop-timeout with --workers: what an insert in flight gets to finish when a test stops.
WORKER_STOP_TIMEOUT_S = 15
#: Loopback calls never go through an http_proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebOptions:
    """Where the web UI listens and how it is guarded."""

    host: str = "127.0.0.1"
    port: int = 8089
    #: "user:password" for Locust's login page (--web-login) ...
    login: str | None = None
    #: ... or for HTTP basic auth on every page and route (--web-auth).
    auth: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise UsageError(f"--web-port {self.port} is out of range: 1 to 65535")
        if self.login and self.auth:
            raise UsageError("--web-login and --web-auth exclude each other; choose one")
        for flag, value in (("--web-login", self.login), ("--web-auth", self.auth)):
            if value is not None:
                user, _, password = value.partition(":")
                if not user or not password:
                    raise UsageError(f"{flag} {value!r} is not USER:PASSWORD")

    @property
    def guarded(self) -> bool:
        return bool(self.login or self.auth)

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{self.port}"


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_port(web: WebOptions) -> None:
    """Refuse a web port that is taken before anything starts (Locust would fail after Milvus)."""
    family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((web.host.strip("[]"), web.port))
    except OSError as exc:
        raise UsageError(f"the web UI cannot listen on {web.host or '0.0.0.0'}:{web.port}: "
                         f"{exc.strerror or exc} (choose another --web-port or --web-host)") from None


def bind_warning(web: WebOptions) -> str | None:
    """The one-line warning for a web UI that other machines reach without a password."""
    if is_loopback(web.host) or web.guarded:
        return None
    return (f"warning: the web UI on {web.host or '0.0.0.0'}:{web.port} is reachable from other machines "
            "and has no login: anyone who reaches it can start load against Milvus "
            "(add --web-login USER:PASSWORD or --web-auth USER:PASSWORD)")


# --- reading a run directory for the tab -------------------------------------------------


class JsonlTail:
    """The records appended to a JSON-lines file since the last poll; a torn last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        records = []
        for line in chunk[:end].splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


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
        self._acks = JsonlTail(self.run_dir.acks)
        self._lock = threading.Lock()
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.acked_series: list[list[float]] = []  # [t, rows acked so far]
        self.acked_rows = 0
        self.failed_inserts = 0
        self.settled = 0
        self._live_verdict: tuple[tuple[int, int, int], float, dict[str, Any]] | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.path.name

    def poll(self) -> None:
        with self._lock:
            for sample in self._samples.poll():
                self.samples.setdefault(sample["component"], []).append(_sample_fields(sample))
            self.events.extend(self._events.poll())
            for ack in sorted(self._acks.poll(), key=lambda a: a["t"]):
                self.settled += 1
                if ack["ok"]:
                    self.acked_rows += ack["rows"]
                    self.acked_series.append([ack["t"], self.acked_rows])
                else:
                    self.failed_inserts += 1

    def progress(self) -> int:
        """Insert attempts settled so far (the stall detector's notion of progress)."""
        return self.settled

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
        key = (self.acked_rows, self.failed_inserts, len(self.events))
        cached = self._live_verdict
        if cached and cached[0] == key and time.monotonic() - cached[1] < _LIVE_VERDICT_EVERY_S:
            return cached[2]
        verdict = self._judge_so_far(inputs)
        self._live_verdict = (key, time.monotonic(), verdict)
        return verdict

    def _judge_so_far(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The scenario's rules applied to the figures so far (the acked rows are not verified yet)."""
        if not self.acked_rows:
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
            last_ack = self.acked_series[-1][0] if self.acked_series else None
            rate = (self.acked_rows / (last_ack - load_started)
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
                "rows": {"planned": fields.get("total_rows"), "acked": self.acked_rows,
                         "failed_inserts": self.failed_inserts, "rows_per_s": round(rate, 1)},
                "acked": [list(a) for a in self.acked_series],  # small: one point per batch
                "components": components,
                "events": [e for e in self.events if e["type"] in SHOWN_EVENTS],
            }
        snapshot["verdict"] = self._verdict(inputs, summary)
        snapshot["report"] = _report_links(self.run_dir) if summary is not None else None
        return snapshot


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _report_links(run_dir: RunDir) -> dict[str, str]:
    """The run's report files, as paths relative to the report directory."""
    names = {"html": "report.html", "md": "report.md", "summary": "summary.json", "junit": "junit.xml",
             "locust": "locust.html"}
    return {key: f"{run_dir.path.name}/{name}" for key, name in names.items() if (run_dir.path / name).exists()}


# --- the session: target, runs, control channel --------------------------------------------


@dataclass
class _Run:
    """One run started from the browser."""

    run_id: str
    run_dir: RunDir
    scenario: scenarios.Scenario
    began: float
    context: RunContext
    recorder: Recorder
    view: RunView
    locust_log_offset: int
    stop_events: list[Event] = field(default_factory=list)
    active: bool = True
    finishing: bool = False
    stop_request: str | None = None
    verdict_at: float | None = None
    result: RunResult | None = None
    injector: inject.Injector | None = None
    crash_loop: CrashLoopDetector | None = None


class UiSession:
    """The harness side of `milvus-harness ui`; `serve()` drives it."""

    def __init__(self, options: RunOptions, web: WebOptions, console: Console | None = None) -> None:
        self.options = options
        self.web = web
        self.console = console or Console()
        self.scenario, self.target_options = prepare(options)
        self.tmp = Path(tempfile.mkdtemp(prefix="milvus-harness-ui-"))
        self.locust_log = self.tmp / "locust.log"
        self.token = secrets.token_urlsafe(24)
        self.hub = RunContext()  # the watchers fire here for the whole session
        self._recording: RunContext | None = None  # ... and this run's context records it
        self.hub.on_sample(self._forward_sample)
        self.hub.on_event(self._forward_event)
        self._lock = threading.RLock()
        self._run_lock = threading.Lock()
        self.phase = "starting milvus"
        self.message = ""
        self.target: Any = None
        self._starting_target: Any = None
        self.endpoint: Endpoint | None = None
        self.facts: dict[str, Any] = {}
        self.version: str | None = None
        self._targets_started = 0
        self.target_log_dir: Path | None = None
        self._target_ready = threading.Event()
        self.run: _Run | None = None
        self.finished: list[dict[str, Any]] = []
        self._finisher: threading.Thread | None = None
        self._closing = False
        self.control: ThreadingHTTPServer | None = None
        self.locust: list[subprocess.Popen[bytes]] = []

    # -- recording ----------------------------------------------------------------------

    def _forward_sample(self, sample: Sample) -> None:
        context = self._recording
        if context is not None:
            context.fire_sample(sample)

    def _forward_event(self, event: Event) -> None:
        context = self._recording
        if context is not None:
            context.fire_event(component=event.component, type=event.type, detail=event.detail, t=event.t,
                               data=event.data)

    # -- target ------------------------------------------------------------------------

    def start_target(self, phase: str = "starting milvus") -> None:
        """Start a fresh target (its logs go to the session's temporary dir until a run takes them)."""
        with self._lock:
            self._target_ready.clear()
            self.phase = phase
            self._targets_started += 1
            log_dir = self.tmp / f"milvus-logs-{self._targets_started}"
        if self.target_options.target != "embedded":
            from harness.kube.contexts import check_context  # refuse a production context before anything starts

            check_context(self.target_options)
        target = make_target(self.target_options, log_dir=log_dir)
        self._starting_target = target
        try:
            version = getattr(target, "version", None) or self.target_options.milvus_version
            self._check_version(self.scenario, version)
            endpoint = target.start(self.hub)
        finally:
            self._starting_target = None
        if self._closing:
            target.stop()
            raise Interrupted(signal.SIGTERM)
        with self._lock:
            self.target, self.endpoint, self.version = target, endpoint, version
            self.facts = {"target": self.target_options.target, "milvus_version": version,
                          "memory_limit_bytes": self.target_options.memory_limit, **target.facts()}
            self.target_log_dir = log_dir
            self.phase, self.message = "ready", ""
            self._target_ready.set()

    def _check_version(self, scenario: scenarios.Scenario, version: str | None) -> None:
        needed = scenario.oldest_milvus()
        if self.target_options.target == "embedded" and version:
            from packaging.version import Version

            if Version(version) < Version(needed):
                raise TargetError(f"milvus {version} cannot run scenario {scenario.name!r}: it needs {needed} "
                                  "or newer (ARRAY fields need 2.3.0, partition keys 2.2.9)")

    def _restart_target(self) -> None:
        """After a run on the embedded target: a new server for the next run (in the background)."""
        try:
            self.start_target(phase="fresh milvus for the next run")
        except Interrupted:
            return
        except Exception as exc:  # shown in the tab and refused at the next start
            log.exception("milvus did not start again")
            with self._lock:
                self.phase, self.message = "failed", f"milvus did not start again: {exc}"
            self.console.print(f"[red]milvus did not start again: {exc}[/]")

    def _stop_target(self) -> None:
        for target in (self._starting_target, self.target):
            if target is not None:
                try:
                    target.stop()
                except Exception:  # keep stopping the rest
                    log.exception("stopping the target failed")
        self.target = None

    # -- runs --------------------------------------------------------------------------

    def start_run(self, fields: dict[str, str], users: str | None) -> dict[str, Any]:
        """A new run from the start form: validated fields, fresh run dir and collection, load.json."""
        overrides = dict(self.options.overrides)
        overrides.update({k: str(v).strip() for k, v in fields.items() if k in FORM_FIELDS})
        if users is not None:
            overrides["users"] = str(users).strip()
        scenario = scenarios.load(self.options.scenario).with_overrides(overrides)  # refused before waiting
        with self._run_lock:
            with self._lock:
                stale = self.run if self.run is not None and self.run.active else None
                finisher = self._finisher
            if stale is not None:
                # Locust asks for a run only when it is not loading, so this one never started
                # (its swarm failed after the harness made the run): judge it as it is.
                stale.finishing = True
                self._finish(stale, reason="Locust did not start its load")
            elif finisher is not None:
                finisher.join()  # the previous run's report and the new server come first
            if not self._target_ready.is_set() and self.phase == "failed":
                self._restart_target()  # one more try; it may have been a passing problem
            deadline = time.monotonic() + 600
            while not self._target_ready.wait(timeout=0.5):
                if self.phase == "failed" or time.monotonic() > deadline:
                    raise TargetError(self.message or "milvus is not ready (still starting after 10 minutes)")
            self._check_version(scenario, self.version)
            return self._begin(scenario, overrides)

    def _begin(self, scenario: scenarios.Scenario, overrides: dict[str, str]) -> dict[str, Any]:
        began = time.time()
        run_id = _new_run_id(scenario, self.version)
        while (self.options.report_dir / run_id).exists():  # two runs within one second
            run_id = f"{run_id}-{secrets.token_hex(2)}"
        run_dir = RunDir.create(self.options.report_dir, run_id)
        run_options = replace(self.options, overrides=overrides)
        inputs = run_inputs(run_id, run_options, scenario, self.target_options, self.version, began)
        write_json(run_dir.run_json, {**inputs, "isolation": self.facts.get("isolation"), "facts": self.facts,
                                      "web_ui": True})
        context = RunContext(run_dir)
        recorder = Recorder(context, run_dir)
        view = RunView(run_dir.path)
        offset = self.locust_log.stat().st_size if self.locust_log.exists() else 0
        run = _Run(run_id, run_dir, scenario, began, context, recorder, view, offset)
        context.on_event(lambda e: run.stop_events.append(e)
                         if e.type in (events.OOM_KILLED, events.MEMORY_STALL, events.EXITED) else None)
        StallDetector(context, view.progress, seconds=self.target_options.stall_seconds)
        run.crash_loop = CrashLoopDetector(context, lambda: view.acked_rows, after=self.options.crash_loop_after)
        down = ServerDown.in_dir(run_dir.path)
        DownGate(context, down)  # the users hold their inserts while the server is down
        with self._lock:
            self.run = run
            self.phase = "creating collection"
            self._recording = context
        assert self.endpoint is not None
        try:
            collection.create(self.endpoint.address, scenario)
        except HarnessError as exc:
            run.finishing = True
            self._finish(run, reason=str(exc), inconclusive=str(exc))
            raise
        config = run_dir.path / "load.json"
        write_json(config, {"address": self.endpoint.address, "scenario": scenario.to_json(),
                            "acks": str(run_dir.acks.resolve()), **down.to_json()})
        context.fire_event(component="harness", type=events.LOAD_STARTED,
                           detail=f"{scenario.users} user{'s' if scenario.users != 1 else ''}, started in the web UI")
        run.injector = inject.Injector([inject.parse(s) for s in self.options.inject], self.target, context,
                                       lambda: view.acked_rows)
        run.injector.start()
        with self._lock:
            self.phase = "loading"
        threading.Thread(target=self._watch_run, args=(run,), name=f"rules-{run_id}", daemon=True).start()
        self.console.print(f"run {run_id}: loading {scenario.total_rows:,} rows in {scenario.batch_rows:,}-row "
                           f"batches ({_count(scenario.shards, 'shard')}, {_count(scenario.partitions, 'partition')}, "
                           f"{_count(scenario.users, 'user')})", highlight=False)
        return {"run_id": run_id, "config": str(config.resolve()), "run_dir": str(run_dir.path.resolve())}

    def _watch_run(self, run: _Run) -> None:
        """The stop rules of `run`: Locust learns of a stop request from /state."""
        while run.active and not self._closing:
            run.view.poll()
            reason = (stop_rule(run.stop_events, self.options.keep_going, self.target_options.restart)
                      or (run.crash_loop.reason if run.crash_loop else None))
            if reason and run.stop_request is None:
                run.stop_request = reason
                with self._lock:
                    self.phase = "stopping"
                self.console.print(f"run {run.run_id}: {reason}", highlight=False)
            time.sleep(0.25)

    def stop_run(self, run_id: str, reason: str) -> dict[str, Any]:
        """Locust stopped the load of `run_id` and wrote its stats: judge the run in the background."""
        with self._lock:
            run = self.run
            if run is None or run.run_id != run_id or not run.active:
                return {"phase": self.phase}
            run.active = False
            run.verdict_at = time.time()
            if self._closing:
                return {"phase": "closing"}  # close() finalizes it as ABORTED
            run.finishing = True
            self.phase = "verifying"
            self._finisher = threading.Thread(target=self._finish, args=(run,),
                                              kwargs={"reason": run.stop_request or reason},
                                              name=f"finish-{run_id}", daemon=True)
            self._finisher.start()
            return {"phase": self.phase}

    def _finish(self, run: _Run, reason: str, inconclusive: str | None = None, status: str = "FINISHED",
                exit_code: int | None = None) -> None:
        """Stop recording, verify, judge and report one run; then a fresh server for the next."""
        run.active = False
        try:
            if run.injector:
                run.injector.stop()
            run.view.poll()
            run.context.fire_event(component="harness", type=events.LOAD_STOPPED, detail=reason)
            with self._lock:
                if self._recording is run.context:
                    self._recording = None  # as `run` stops its watchers before verifying
            verification: dict[str, Any] = {"verified": None, "note": "the load never started"}
            if inconclusive is None and status == "FINISHED" and self.endpoint is not None:
                self.phase = "verifying"
                verification = verify_after_load(self.target, self.endpoint.address, run.scenario, run.run_dir)
            embedded = self.target_options.target == "embedded"
            if embedded:
                self.phase = "stopping milvus"
                self._target_ready.clear()
                self._stop_target()
                self._take_logs(run)
            self._take_locust_log(run)
            run.recorder.close()
            self.phase = "reporting"
            run.result = finalize_run(run.run_dir, run_id=run.run_id, scenario=run.scenario, facts=self.facts,
                                      began=run.began, verdict_at=run.verdict_at or time.time(),
                                      verification=verification, status=status, exit_code=exit_code,
                                      inconclusive=inconclusive, console=self.console)
            summary = run.result.summary
            with self._lock:
                self.finished.insert(0, {"run_id": run.run_id, "verdict": summary["verdict"],
                                         "reasons": summary.get("reasons", []),
                                         "report": _report_links(run.run_dir)})
            self.console.print(f"run {run.run_id}: {summary['verdict']}: {'; '.join(summary.get('reasons', []))}\n"
                               f"  report: {run.run_dir.path / 'report.html'}", highlight=False)
        except Exception as exc:
            log.exception("finishing run %s failed", run.run_id)
            self.console.print(f"[red]run {run.run_id}: its report could not be written: {exc}[/]")
        finally:
            if self.target_options.target == "embedded" and not self._closing:
                self._restart_target()
            elif not self._closing:
                with self._lock:
                    self.phase = "ready"

    def _take_logs(self, run: _Run) -> None:
        """The stopped server's logs into the run directory (they cover this run's server only)."""
        source = self.target_log_dir
        if source is None or not source.exists():
            return
        for item in source.iterdir():
            try:
                shutil.move(str(item), str(run.run_dir.logs / item.name))
            except OSError as exc:
                log.warning("could not move %s: %s", item, exc)

    def _take_locust_log(self, run: _Run) -> None:
        """The part of Locust's log written during this run, as logs/locust.log."""
        if not self.locust_log.exists():
            return
        with self.locust_log.open("rb") as source, (run.run_dir.logs / "locust.log").open("ab") as dest:
            source.seek(run.locust_log_offset)
            shutil.copyfileobj(source, dest)

    # -- what the control channel answers ---------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            run = self.run
            return {"phase": self.phase, "message": self.message,
                    "run_id": run.run_id if run else None, "active": bool(run and run.active),
                    "stop_request": run.stop_request if run and run.active else None}

    def memory(self, since: float | None = None) -> dict[str, Any]:
        """The memory tab's data: live samples of the current (or last) run, limits, events,
        rows acked, the verdict so far, and the links of this session's reports."""
        with self._lock:
            run, phase, message = self.run, self.phase, self.message
            facts = dict(self.facts)
            finished = list(self.finished)
        latest = {name: s.to_json() for name, s in sorted(dict(self.hub.latest).items())}
        for sample in latest.values():
            sample.pop("metrics", None)
        return {
            "schema_version": SCHEMA_VERSION,
            "now": time.time(),
            "phase": phase,
            "message": message,
            "target": {k: facts.get(k) for k in ("target", "milvus_version", "memory_limit_bytes", "isolation",
                                                  "address", "restart_policy")},
            "scenario": {k: getattr(self.scenario, k) for k in ("name", "total_rows", "batch_rows", "shards",
                                                                "partitions", "users")},
            "latest": latest,
            "run": run.view.snapshot(since) if run else None,
            "runs": finished,
        }

    # -- control channel -----------------------------------------------------------------

    def start_control(self) -> str:
        """Serve the control channel on a free loopback port; returns its URL."""
        session = self

        class Handler(_ControlHandler):
            pass

        Handler.session = session
        self.control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.control.daemon_threads = True
        threading.Thread(target=self.control.serve_forever, name="ui-control", daemon=True).start()
        return f"http://127.0.0.1:{self.control.server_address[1]}"

    # -- Locust ----------------------------------------------------------------------------

    def start_locust(self, control_url: str) -> None:
        """Locust with its web UI (and workers with --workers), logging to the session's locust.log."""
        s = self.scenario
        common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--harness-control", control_url,
                  "--harness-report-dir", str(self.options.report_dir.resolve())]
        # Users finish the insert in flight when stopped; with workers keep that short, as a
        # Locust worker rejoins for the next test only once the stop timeout has passed.
        stop_timeout = WORKER_STOP_TIMEOUT_S if self.options.workers else 120
        master = [*common, "--web-host", self.web.host, "--web-port", str(self.web.port),
                  "-u", str(s.users), "-r", str(s.users), "--stop-timeout", str(stop_timeout),
                  "--total-rows", str(s.total_rows), "--batch-rows", str(s.batch_rows),
                  "--shards", str(s.shards), "--partitions", str(s.partitions)]
        if self.options.run_time:
            master += ["--run-time", f"{int(self.options.run_time)}s"]
        if self.web.login:
            master.append("--web-login")
        env = {**os.environ, TOKEN_ENV: self.token}
        if self.web.guarded:
            env[CREDENTIALS_ENV] = ("login:" if self.web.login else "basic:") + (self.web.login or self.web.auth or "")
        env.pop("LOCUST_HEADLESS", None)
        with self.locust_log.open("ab") as out:
            if self.options.workers:
                from harness.targets.embedded import free_ports

                port = free_ports(1)[0]
                master += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                           "--expect-workers", str(self.options.workers)]
                self.locust.append(_spawn(master, out, env))
                for _ in range(self.options.workers):
                    self.locust.append(_spawn([*common, "--worker", "--master-host", "127.0.0.1",
                                               "--master-port", str(port)], out, env))
            else:
                self.locust.append(_spawn(master, out, env))

    def wait_web_ui(self, timeout: float = 60.0) -> None:
        """Until the web UI answers; a Locust that exits instead is a TargetError with its log's tail."""
        url = self.web.url + "/"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.locust[0].poll() is not None:
                raise TargetError(f"Locust's web UI did not start on {self.web.host}:{self.web.port} "
                                  f"(exit {self.locust[0].returncode}):\n{self._locust_tail()}")
            try:
                _NO_PROXY.open(url, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # 401/302 with auth: it answers
            except OSError:
                time.sleep(0.25)
        raise TargetError(f"Locust's web UI did not answer on {url} within {timeout:.0f} s:\n{self._locust_tail()}")

    def _locust_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.locust_log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def locust_running(self) -> bool:
        return bool(self.locust) and self.locust[0].poll() is None

    def stop_locust(self, timeout: float = 60.0) -> None:
        """SIGTERM the web UI process (it stops a test in progress and its workers), then make sure."""
        if not self.locust:
            return
        for proc in self.locust:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.locust:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- the end -------------------------------------------------------------------------

    def close(self, exit_code: int) -> None:
        """Stop Locust, finalize a run in progress as ABORTED, stop the target; idempotent."""
        self._closing = True
        try:
            self.stop_locust(timeout=60)
        finally:
            try:
                run = self.run
                if run is not None and not run.finishing:
                    run.finishing = True
                    self.console.print(f"run {run.run_id}: interrupted; writing its partial report", highlight=False)
                    self._finish(run, reason="the web UI was closed", status="ABORTED", exit_code=exit_code)
                elif self._finisher is not None and self._finisher.is_alive():
                    self.console.print("finishing the last run's report (Ctrl-C again to skip)", highlight=False)
                    try:
                        self._finisher.join()
                    except KeyboardInterrupt:
                        pass
            finally:
                self._stop_target()
                if self._finisher is not None:
                    self._finisher.join(timeout=30)
                if self.control is not None:
                    self.control.shutdown()
                    self.control.server_close()
                shutil.rmtree(self.tmp, ignore_errors=True)


def _spawn(argv: list[str], out: Any, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own session: Ctrl-C reaches this process alone, which then stops Locust in order.
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


class _ControlHandler(BaseHTTPRequestHandler):
    """The loopback control channel between Locust and the harness (JSON in, JSON out)."""

    session: UiSession
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("control: " + format, *args)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = self.headers.get("X-Harness-Token", "")
        if hmac.compare_digest(given.encode(), self.session.token.encode()):
            return True
        self._reply(403, {"error": "bad token"})
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._authorized():
            return
        parts = urlsplit(self.path)
        if parts.path == "/state":
            self._reply(200, self.session.state())
        elif parts.path == "/memory":
            since = parse_qs(parts.query).get("since", [None])[0]
            try:
                value = float(since) if since not in (None, "") else None
            except ValueError:
                self._reply(400, {"error": f"since={since!r} is not a number"})
                return
            self._reply(200, self.session.memory(value))
        else:
            self._reply(404, {"error": f"no {parts.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        try:
            body = self._body()
            if path == "/runs":
                self._reply(200, self.session.start_run(body.get("fields", {}), body.get("users")))
            elif path.startswith("/runs/") and path.endswith("/stop"):
                run_id = path[len("/runs/"):-len("/stop")]
                self._reply(202, self.session.stop_run(run_id, str(body.get("reason") or "stopped in the web UI")))
            else:
                self._reply(404, {"error": f"no {path}"})
        except HarnessError as exc:
            self._reply(400, {"error": str(exc)})
        except Exception as exc:  # a bug: its traceback goes to the log, its message to the form
            log.exception("control %s failed", path)
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})


# --- the command --------------------------------------------------------------------------


def serve(options: RunOptions, web: WebOptions, console: Console | None = None,
          on_ready: Callable[[UiSession], None] | None = None) -> int:
    """`milvus-harness ui`: until Ctrl-C or SIGTERM; returns 0 after a clean shutdown.

    A target that does not start is a TargetError (exit 125), as for `run`.
    """
    console = console or Console()
    warning = bind_warning(web)
    check_port(web)
    session = UiSession(options, web, console)  # validates the scenario and options first
    if warning:
        print(f"milvus-harness: {warning}", file=sys.stderr, flush=True)
    old_term = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    exit_code = 0
    try:
        try:
            control_url = session.start_control()
            console.print(f"starting milvus {session.target_options.milvus_version or ''} "
                          f"({session.target_options.target}) ...".replace("  ", " "), highlight=False)
            session.start_target()
            facts = session.facts
            console.print(f"milvus {facts.get('milvus_version') or ''} ({facts.get('target')}) at "
                          f"{session.endpoint.address if session.endpoint else '?'}, memory limit "
                          f"{format_bytes(facts.get('memory_limit_bytes'))} ({facts.get('isolation') or 'none'})",
                          highlight=False)
            session.start_locust(control_url)
            session.wait_web_ui()
            console.print(f"Locust web UI: {web.url}/  (memory tab: {web.url}/?tab={TAB_KEY}); "
                          f"runs go to {options.report_dir}/; Ctrl-C to quit", highlight=False)
            if on_ready:
                on_ready(session)
            while True:
                if not session.locust_running():
                    raise TargetError(f"Locust exited ({session.locust[0].returncode}):\n{session._locust_tail()}")
                time.sleep(0.5)
        except KeyboardInterrupt:
            exit_code = int(ExitCode.INTERRUPTED)
        except Interrupted as exc:
            exit_code = exc.exit_code
    finally:
        signal.signal(signal.SIGTERM, old_term)
        session.close(exit_code or int(ExitCode.INTERRUPTED))
    console.print("milvus-harness ui: stopped; nothing left running", highlight=False)
    return 0


__all__ = ["WebOptions", "UiSession", "RunView", "serve", "bind_warning", "is_loopback", "TAB_KEY"]
