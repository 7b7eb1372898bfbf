"""The harness side of `milvus-harness ui` (UiSession): one target, one run per Start in the browser.

UiSession owns what `run` owns, through the same pieces: the target (run.lifecycle.make_target,
run.guards), its watcher, each run's listeners (run.listeners: stop events, stall, crash loop,
down gate, heap profiles), the stop rules (run.lifecycle.stop_rule), Locust's processes
(webui/web_locust.py over run.locust_procs) and every run directory (finalized by
run.lifecycle.finalize_run). Locust runs as its own process with its web UI (gevent stays out
of this one; harness/webui/extension.py is its side). The two talk over a loopback HTTP
channel (webui/control.py) that only this process serves, guarded by a random token:

    browser --(Locust's web UI, /harness/* routes)--> Locust process
    Locust process --(POST /runs, POST /runs/<id>/stop, GET /state, GET /memory)--> here

Start in the browser: Locust sends the form's scenario fields here; they are validated like
`--set` (a refusal is shown in the form), a fresh run directory and collection are made and
the answer holds the run's load settings (harness.load.locust_options), which Locust's users then insert. Stop (the Stop
button, the run time, every batch settled, or a stop rule here, which Locust sees on /state):
Locust writes its stats into the run directory and says so; this process verifies the acked
rows and writes summary.json and the reports exactly as `run` does.
The embedded server is then started afresh, so every run starts from a new server under its
limit (verification lifts it). Ctrl-C ends Locust, finalizes a run in progress as ABORTED and
stops the target.

What the memory tab gets is built in webui/run_view.py, Locust's process in webui/web_locust.py.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.errors import HarnessError, Interrupted, TargetError
from harness.load import collection
from harness.run import inject
from harness.run.guards import check_kube_context, check_milvus_version
from harness.run.lifecycle import (RunOptions, RunResult, finalize_run, make_target, prepare, run_inputs,
                                   stop_rule, verify_after_load)
from harness.rundir import RunDir, new_run_id, write_json
from harness.scenario import model as scenarios
from harness.targets.protocol import Endpoint, Target
from harness.units import plural
from harness.watch import events
from harness.watch.events import Recorder, Relay, RunEvents
from harness.load.dispenser import ServerDown
from harness.load.locust_options import REUSE, LoadSettings
from harness.run.listeners import RunListeners, attach_listeners
from harness.webui import FORM_FIELDS
from harness.webui.control import ControlChannel
from harness.webui.options import WebOptions
from harness.webui.run_view import RunView, memory_answer, report_links
from harness.webui.web_locust import WebLocust

log = logging.getLogger(__name__)


# --- the session: target, runs, control channel --------------------------------------------


@dataclass
class _Run:
    """One run started from the browser."""

    run_id: str
    run_dir: RunDir
    scenario: scenarios.Scenario
    began: float
    context: RunEvents
    recorder: Recorder
    view: RunView
    locust_log_offset: int
    listeners: RunListeners
    active: bool = True
    finishing: bool = False
    stop_request: str | None = None
    result: RunResult | None = None
    injector: inject.Injector | None = None


class UiSession:
    """The harness side of `milvus-harness ui`; harness/commands/ui.py drives it."""

    def __init__(self, options: RunOptions, web: WebOptions, console: Console | None = None) -> None:
        self.options = options
        self.web = web
        self.console = console or Console()
        self.scenario, self.target_options = prepare(options)
        self.tmp = Path(tempfile.mkdtemp(prefix="milvus-harness-ui-"))
        self.token = secrets.token_urlsafe(24)
        self.hub = RunEvents()  # the watchers fire here for the whole session
        self._relay = Relay(self.hub)  # ... and the current run's context records it
        self._lock = threading.RLock()
        self._run_lock = threading.Lock()
        self.phase = "starting milvus"
        self.message = ""
        self.target: Target | None = None
        self._starting_target: Target | None = None
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
        self.control: ControlChannel | None = None
        self.locust = WebLocust(self.tmp / "locust.log")

    # -- target ------------------------------------------------------------------------

    def start_target(self, phase: str = "starting milvus") -> None:
        """Start a fresh target (its logs go to the session's temporary dir until a run takes them)."""
        with self._lock:
            self._target_ready.clear()
            self.phase = phase
            self._targets_started += 1
            log_dir = self.tmp / f"milvus-logs-{self._targets_started}"
        check_kube_context(self.target_options)
        target = make_target(self.target_options, log_dir=log_dir)
        self._starting_target = target
        try:
            version = target.version or self.target_options.milvus_version
            check_milvus_version(self.target_options.target, self.scenario, version)
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

    def _watchers(self) -> list[Any]:
        """The live target's watchers (the heap-profile capturer of a run asks them)."""
        target = self.target
        return list(target.watchers()) if target is not None else []

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
        """A new run from the start form: validated fields, fresh run dir and collection, the load settings."""
        overrides = dict(self.options.overrides)
        overrides.update({k: str(v).strip() for k, v in fields.items() if k in FORM_FIELDS})
        # The web UI never ramps: the form's user count (1 when a caller gives none) is the run's.
        pinned = overrides.get("users", str(self.options.users or 1))
        overrides["users"] = str(users).strip() if users is not None else pinned
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
            check_milvus_version(self.target_options.target, scenario, self.version)
            return self._begin(scenario, overrides)

    def _begin(self, scenario: scenarios.Scenario, overrides: dict[str, str]) -> dict[str, Any]:
        began = time.time()
        run_id = new_run_id(self.options.report_dir, scenario.name, self.version)
        run_dir = RunDir.create(self.options.report_dir, run_id)
        run_options = replace(self.options, overrides=overrides)
        inputs = run_inputs(run_id, run_options, scenario, self.target_options, self.version, began)
        write_json(run_dir.run_json, {**inputs, "isolation": self.facts.get("isolation"), "facts": self.facts,
                                      "web_ui": True})
        context = RunEvents(run_dir)
        recorder = Recorder(context, run_dir)
        view = RunView(run_dir.path)
        offset = self.locust.log_size()
        down = ServerDown.in_dir(run_dir.path)  # the users hold their inserts while the server is down
        # The same listeners as `run`'s (stop events, stall, crash loop, down gate, heap profiles).
        listeners = attach_listeners(context, run_dir, settled_rows=view.progress, acked_rows=lambda: view.acked_rows,
                                     watchers=self._watchers, down=down,
                                     stall_seconds=self.target_options.stall_seconds,
                                     crash_loop_after=self.options.crash_loop_after,
                                     recovery_timeout=self.options.recovery_timeout,
                                     profile_every=self.options.profile_every)
        run = _Run(run_id, run_dir, scenario, began, context, recorder, view, offset, listeners)
        with self._lock:
            self.run = run
            self.phase = "creating collection"
            self._relay.to = context
        assert self.endpoint is not None
        try:
            collection.create(self.endpoint.connection, scenario)
        except HarnessError as exc:
            run.finishing = True
            self._finish(run, reason=str(exc), inconclusive=str(exc))
            raise
        # The users insert into the collection made here (reuse); the secrets reach Locust
        # through its environment (web_locust), never this answer.
        settings = LoadSettings(self.endpoint.connection, scenario, REUSE, run_dir.acks.resolve(),
                                run_dir=run_dir.path.resolve())
        context.fire_event(component="harness", type=events.LOAD_STARTED,
                           detail=f"{scenario.users} user{'s' if scenario.users != 1 else ''}, started in the web UI")
        run.injector = inject.Injector([inject.parse(s) for s in self.options.inject], self.target, context,
                                       lambda: view.acked_rows)
        run.injector.start()
        with self._lock:
            self.phase = "loading"
        threading.Thread(target=self._watch_run, args=(run,), name=f"rules-{run_id}", daemon=True).start()
        self.console.print(f"run {run_id}: loading {scenario.total_rows:,} rows in {scenario.batch_rows:,}-row "
                           f"batches ({plural(scenario.shards, 'shard')}, {plural(scenario.partitions, 'partition')}, "
                           f"{plural(scenario.users, 'user')})", highlight=False)
        return {"run_id": run_id, "settings": settings.to_json(), "run_dir": str(run_dir.path.resolve())}

    def _watch_run(self, run: _Run) -> None:
        """The stop rules of `run`: Locust learns of a stop request from /state."""
        while run.active and not self._closing:
            run.view.poll()
            run.listeners.crash_loop.check_recovery(time.time())
            reason = (stop_rule(run.listeners.stop_events, self.options.keep_going, self.target_options.restart)
                      or run.listeners.crash_loop.reason)
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
            if inconclusive is None and status == "FINISHED":
                run.listeners.end_of_load()  # heap profiles before verification changes the heap
            with self._lock:
                if self._relay.to is run.context:
                    self._relay.to = None  # as `run` stops its watchers before verifying
            verification: dict[str, Any] = {"verified": None, "note": "the load never started"}
            if inconclusive is None and status == "FINISHED" and self.endpoint is not None:
                self.phase = "verifying"
                verification = verify_after_load(self.target, self.endpoint.connection, run.scenario, run.run_dir,
                                                 self.options.verify, run.context)
            run.listeners.close()  # before the target stops
            embedded = self.target_options.target == "embedded"
            if embedded:
                self.phase = "stopping milvus"
                self._target_ready.clear()
                self._stop_target()
                if self.target_log_dir is not None:
                    run.run_dir.take_logs(self.target_log_dir)  # they cover this run's server only
            self.locust.copy_log(since=run.locust_log_offset, dest=run.run_dir.logs / "locust.log")
            run.recorder.close()
            self.phase = "reporting"
            run.result = finalize_run(run.run_dir, run_id=run.run_id, scenario=run.scenario, facts=self.facts,
                                      began=run.began,
                                      verification=verification, status=status, exit_code=exit_code,
                                      inconclusive=inconclusive, console=self.console)
            summary = run.result.summary
            with self._lock:
                self.finished.insert(0, {"run_id": run.run_id, "verdict": summary["verdict"],
                                         "reasons": summary.get("reasons", []),
                                         "report": report_links(run.run_dir)})
            self.console.print(f"run {run.run_id}: {summary['verdict']}: {'; '.join(summary.get('reasons', []))}\n"
                               f"  report: {run.run_dir.path / 'report.html'}", highlight=False)
        except Exception as exc:
            log.exception("finishing run %s failed", run.run_id)
            self.console.print(f"[red]run {run.run_id}: its report could not be written: {exc}[/]")
        finally:
            run.listeners.close()  # at the latest here (idempotent)
            if self.target_options.target == "embedded" and not self._closing:
                self._restart_target()
            elif not self._closing:
                with self._lock:
                    self.phase = "ready"

    # -- what the control channel answers ---------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            run = self.run
            return {"phase": self.phase, "message": self.message,
                    "run_id": run.run_id if run else None, "active": bool(run and run.active),
                    "stop_request": run.stop_request if run and run.active else None}

    def memory(self, since: float | None = None) -> dict[str, Any]:
        """The memory tab's data (run_view.memory_answer) for the current (or last) run."""
        with self._lock:
            run, phase, message = self.run, self.phase, self.message
            facts = dict(self.facts)
            finished = list(self.finished)
        return memory_answer(phase=phase, message=message, facts=facts, scenario=self.scenario,
                             latest=dict(self.hub.latest), view=run.view if run else None, since=since,
                             finished=finished)

    # -- control channel -----------------------------------------------------------------

    def start_control(self) -> str:
        """Serve the control channel on a free loopback port; returns its URL."""
        self.control = ControlChannel(self)
        return self.control.url

    # -- Locust ----------------------------------------------------------------------------

    def start_locust(self, control_url: str) -> None:
        """Locust with its web UI (and workers with --workers), logging to the session's locust.log."""
        self.locust.start(control_url, self.token, self.web, self.scenario, self.options)

    # -- the end -------------------------------------------------------------------------

    def close(self, exit_code: int) -> None:
        """Stop Locust, finalize a run in progress as ABORTED, stop the target; idempotent."""
        self._closing = True
        try:
            self.locust.stop(60)  # it stops a test in progress and its workers
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
                    self.control.close()
                shutil.rmtree(self.tmp, ignore_errors=True)
