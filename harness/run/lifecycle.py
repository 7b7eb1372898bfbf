"""One run from target start to verdict, report and exit code (`milvus-harness run`; `ui` shares its parts).

The harness process owns the target, the watcher and the stop rules; Locust runs as its own
processes (gevent stays out of this one) and reports every insert into acks.jsonl, which
this process tails for progress. Whatever happens, the finally-block stops Locust and the
target and writes a summary (status ABORTED when interrupted).
"""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import psutil
from rich.console import Console

from harness import __version__, software_versions
from harness.load import collection
from harness.run import inject
from harness.scenario import model as scenarios
from harness.judge.restart_check import RestartCheck
from harness.load.dispenser import LoadPause, ServerDown
from harness.errors import ExitCode, HarnessError, Interrupted, UsageError, sigterm_interrupts
from harness.run.guards import check_kube_context, check_milvus_version
from harness.run.jsonl_tail import AckTally
from harness.run.live_view import LiveView, Progress
from harness.run.locust_procs import LoadProcesses, start_headless
from harness.run.listeners import attach_listeners
from harness.run.recovery import DEFAULT_CRASH_LOOP_AFTER, RECOVERY_TIMEOUT_S
from harness.compare.run_keys import RunKey
from harness.rundir import RunDir, new_run_id, read_jsonl, write_json
from harness.judge.summary import acked_batches, compute
from harness.targets.protocol import Target, TargetOptions
from harness.units import parse_bytes
from harness.judge.verdict import Verdict, decided_at, judge
from harness.judge.verify import verify_after_load
from harness.watch import events
from harness.watch.events import Event, Recorder, RunEvents


@dataclass
class RunOptions:
    """Inputs of one run, as the CLI (or a test, or matrix/bisect) gives them."""

    scenario: str = "seed"
    overrides: dict[str, str] = field(default_factory=dict)
    target: TargetOptions = field(default_factory=TargetOptions)
    report_dir: Path = Path("reports")
    run_time: float | None = None
    workers: int = 0
    users: int | None = None
    keep_going: bool = False
    inject: list[str] = field(default_factory=list)
    #: --verify: pk-ranges, rows or none; None chooses by whether the collection fits the query nodes.
    verify: str | None = None
    crash_loop_after: int = DEFAULT_CRASH_LOOP_AFTER
    #: --recovery-timeout: seconds a restart may stay unready before the run calls it NotRecovered.
    recovery_timeout: float = RECOVERY_TIMEOUT_S
    #: --profile-every: seconds between periodic heap profiles (None: only at thresholds, stall, end).
    profile_every: float | None = None
    run_id: str | None = None
    command: str = ""
    #: --locust: "local" (processes on this machine) or "in-cluster" (kind; harness.run.locust_cluster).
    locust: str = "local"
    locust_image: str | None = None


@dataclass
class RunResult:
    verdict: Verdict | None
    status: str
    run_dir: Path
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        if self.status == "ABORTED":
            return int(self.summary.get("exit_code", ExitCode.INTERRUPTED))
        assert self.verdict is not None
        return self.verdict.exit_code


def prepare(options: RunOptions) -> tuple[scenarios.Scenario, TargetOptions]:
    """Validate everything before anything starts: the scenario, overrides and limits."""
    scenario = scenarios.load(options.scenario).with_overrides(options.overrides)
    if options.users is not None:
        if not 1 <= options.users <= 256:
            raise UsageError(f"--users {options.users} is out of range: 1 to 256")
        scenario = scenarios.Scenario(**{**scenario.__dict__, "users": options.users})
    if not 0 <= options.workers <= 64:
        raise UsageError(f"--workers {options.workers} is out of range: 0 (no distributed mode) to 64")
    target = replace(options.target, collection=scenario.collection, under_test=scenario.rules.under_test)
    if options.locust != "local" or options.locust_image is not None:
        from harness.run import locust_cluster

        locust_cluster.check_options(options.locust, options.workers, target.target, options.locust_image)
        locust_cluster.check_scenario(scenario)
    for spec in options.inject:
        inject.parse(spec)
    if target.target == "external":
        from harness.targets.external import check_remote

        check_remote(target)  # before any lookup or connection
    if options.inject and target.target != "embedded":
        raise UsageError(f"--inject needs the embedded target (got --target {target.target})")
    if target.target == "embedded" and target.memory_limit is None and scenario.embedded_memory_limit:
        target = TargetOptions(**{**target.__dict__,
                                  "memory_limit": parse_bytes(scenario.embedded_memory_limit)})
    presses = [s for s in options.inject if inject.parse(s).action == "oom"]
    if presses and (not target.memory_limit or not target.oom_kill):
        raise UsageError(f"--inject {presses[0]} needs a memory limit that OOM-kills (a --memory-limit, "
                         "without --no-oom-kill)")
    return scenario, target


def make_target(options: TargetOptions, log_dir: Path | None) -> Target:
    """The Target for --target (imports only what that target needs)."""
    if options.target == "embedded":
        from harness.targets.embedded import EmbeddedTarget

        return EmbeddedTarget(options, log_dir=log_dir)
    if options.target == "kind":
        from harness.targets.kind import KindTarget

        return KindTarget(options, under_test=options.under_test)
    if options.target == "external":
        from harness.targets.external import ExternalTarget

        return ExternalTarget(options)
    raise UsageError(f"--target {options.target!r}: allowed are embedded, kind, external")


def run_key(scenario: scenarios.Scenario, target: TargetOptions, version: str | None,
            overrides: dict[str, str]) -> RunKey:
    # The same tag from another repository is another image (kind --image-repository).
    image = ({"image.repository": target.image_repository}
             if target.target == "kind" and target.image_repository != TargetOptions.image_repository else {})
    return RunKey(target=target.target, milvus_version=version, scenario_hash=scenario.digest(),
                  memory_limit_bytes=target.memory_limit,
                  overrides={**overrides, **{f"milvus.{k}": v for k, v in target.milvus_config.items()}, **image})


def _host_facts() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total, "kernel": platform.release(),
            "python": platform.python_version()}


def _acked_rows(run_dir: RunDir) -> int:
    return sum(a["rows"] for a in acked_batches(list(read_jsonl(run_dir.acks))))


def run_inputs(run_id: str, options: RunOptions, scenario: scenarios.Scenario, target_options: TargetOptions,
               version: str | None, began: float) -> dict[str, Any]:
    """run.json's inputs (the run's key among them); `run` and `ui` write the same file."""
    key = run_key(scenario, target_options, version, options.overrides)
    return {
        "run_id": run_id, "key": key.to_json(), "harness_version": __version__, "command": options.command,
        "versions": software_versions(),
        "scenario": {"name": scenario.name, "hash": scenario.digest(), "fields": scenario.to_json()},
        "target": target_options.target, "milvus_version": version,
        "memory_limit_bytes": target_options.memory_limit, "overrides": options.overrides,
        "milvus_config": target_options.milvus_config, "host": _host_facts(), "started": began,
        "workers": options.workers, "users": scenario.users, "keep_going": options.keep_going,
        "inject": options.inject, "locust": options.locust, "profile_every_s": options.profile_every,
    }


def stop_rule(stop_events: list[Event], keep_going: bool, restart: str) -> str | None:
    """Why the load must stop now by the run's stop rules, or None to go on."""
    fatal = [e for e in stop_events if e.type in (events.OOM_KILLED, events.MEMORY_STALL)]
    if fatal and not keep_going:
        return f"stopped at the first {fatal[0].type} (use --keep-going to continue)"
    if stop_events and restart == "never":
        return f"the server died ({stop_events[0].type}) and --restart never"
    return None


def finalize_run(run_dir: RunDir, *, run_id: str, scenario: scenarios.Scenario, facts: dict[str, Any],
                 began: float, verification: dict[str, Any], status: str = "FINISHED",
                 exit_code: int | None = None, inconclusive: str | None = None,
                 console: Console | None = None, ended: float | None = None) -> RunResult:
    """Judge a stopped run from its directory: summary.json with the verdict, then the reports.

    Called by `run` and by the web UI once the load, the watchers and the verification are
    done; ABORTED (status) keeps partial figures and no verdict. `ended` defaults to now (a
    load run outside the harness gives its last record's time).
    """
    ended = ended if ended is not None else time.time()
    summary = compute(run_dir, run_id=run_id, facts=facts, scenario=scenario.to_json(), started=began,
                      ended=ended, verification=verification, status=status, time_to_verdict=None)
    recorded = list(read_jsonl(run_dir.events))
    if status == "ABORTED":
        verdict, reasons, rules = None, [f"the run was interrupted (exit {exit_code}); figures are partial"], []
        summary["exit_code"] = exit_code
    elif inconclusive:
        verdict, reasons, rules = Verdict.INCONCLUSIVE, [inconclusive], []
    else:
        verdict, reasons, rules = judge(scenario.rules, summary, recorded)
    if verdict is not None:
        verified_at = next((e["t"] for e in recorded if e["type"] == events.VERIFY_FINISHED), None)
        decided, basis = decided_at(verdict, rules, recorded, verified_at)
        summary.update(time_to_verdict_s=round(decided - began, 1) if decided is not None else None,
                       time_to_verdict_basis=basis)
    summary.update(verdict=verdict.value if verdict else "ABORTED", reasons=reasons,
                   rules=[r.to_json() for r in rules])
    write_json(run_dir.summary, summary)
    from harness.report import render_report

    try:
        render_report(run_dir.path)
    except (KeyboardInterrupt, Interrupted) as exc:
        # Interrupted while rendering: the run is ABORTED like in any other phase, keeping what
        # it had judged; the pages are written without charts, which takes well under a second.
        code = exc.exit_code if isinstance(exc, Interrupted) else int(ExitCode.INTERRUPTED)
        judged = summary["verdict"]
        summary.update(status="ABORTED", verdict="ABORTED", exit_code=code, judged_verdict=judged,
                       reasons=[f"the run was interrupted while its report was rendered (exit {code}); "
                                f"it had judged {judged}", *reasons])
        write_json(run_dir.summary, summary)
        try:
            render_report(run_dir.path, with_charts=False)
        except Exception as partial_exc:
            _warn_render_failed(console, partial_exc)
        return RunResult(None, "ABORTED", run_dir.path, summary)
    except Exception as exc:  # a report bug must not hide the verdict
        _warn_render_failed(console, exc)
    return RunResult(verdict, status, run_dir.path, summary)


def _warn_render_failed(console: Console | None, exc: BaseException) -> None:
    if console is not None:
        console.print(f"[yellow]warning: report rendering failed: {exc}[/]")


def run(options: RunOptions, console: Console | None = None,
        on_context: Callable[[RunEvents], None] | None = None) -> RunResult:
    """Run one scenario against one target and judge it; never leaves a process behind."""
    console = console or Console(stderr=False)
    began = time.time()
    scenario, target_options = prepare(options)
    with sigterm_interrupts():
        return _run(options, console, began, scenario, target_options, on_context)


def _run(options: RunOptions, console: Console, began: float, scenario: scenarios.Scenario,
         target_options: TargetOptions, on_context: Callable[[RunEvents], None] | None) -> RunResult:
    check_kube_context(target_options)
    target = make_target(target_options, log_dir=None)
    version = target.version or target_options.milvus_version
    run_id = options.run_id or new_run_id(options.report_dir, scenario.name, version)
    run_dir = RunDir.create(options.report_dir, run_id)
    target.log_dir = run_dir.logs  # the server's own logs belong to the run
    inputs = run_inputs(run_id, options, scenario, target_options, version, began)
    write_json(run_dir.run_json, inputs)
    context = RunEvents(run_dir)
    recorder = Recorder(context, run_dir)
    if on_context:
        on_context(context)
    progress = Progress(planned=scenario.total_rows, started=began)
    view = LiveView(console, progress)
    context.on_event(lambda e: progress.events.append(e))
    context.on_event(view.event)
    context.on_sample(lambda s: progress.latest.__setitem__(s.component, s))
    tail = AckTally(run_dir.acks)
    pause = LoadPause.in_dir(run_dir.path)
    down = ServerDown.in_dir(run_dir.path)
    verifying = threading.Event()  # no MemoryStall once the load is over: nothing is to progress
    listeners = attach_listeners(
        context, run_dir, settled_rows=lambda: tail.settled, acked_rows=lambda: tail.acked_rows,
        watchers=target.watchers, down=down if target_options.target == "embedded" else None,
        stall_seconds=target_options.stall_seconds, crash_loop_after=options.crash_loop_after,
        recovery_timeout=options.recovery_timeout, profile_every=options.profile_every,
        paused=lambda: pause.requested() or verifying.is_set() or down.is_down())
    stop_events, gate, crash_loop = listeners.stop_events, listeners.gate, listeners.crash_loop

    status, exit_code = "FINISHED", None
    facts: dict[str, Any] = {"target": target_options.target, "milvus_version": version,
                             "memory_limit_bytes": target_options.memory_limit}
    verification: dict[str, Any] = {"verified": None, "note": "the load never started"}
    inconclusive: str | None = None
    locust: LoadProcesses | None = None
    injector: inject.Injector | None = None
    restart_check: RestartCheck | None = None
    try:
        check_milvus_version(target_options.target, scenario, version)
        with view:
            progress.phase = f"starting milvus {version or ''}".strip()
            view.update()
            endpoint = target.start(context)
            facts = {**facts, **target.facts()}
            write_json(run_dir.run_json, {**inputs, "isolation": facts.get("isolation"), "facts": facts})
            progress.phase = "creating collection"
            collection.create(endpoint.connection, scenario)
            if scenario.check_after_restart and options.locust == "local":  # it pauses local Locust only
                restart_check = RestartCheck(context, endpoint.connection, scenario.collection, pause,
                                             acked_rows=lambda: _acked_rows(run_dir),
                                             load_running=lambda: locust is not None and locust.running())
            if options.locust == "in-cluster":  # image, pods and the wait come before the load's clock
                from harness.run.locust_cluster import start_in_cluster

                progress.phase = "starting Locust in the cluster"
                view.update()
                locust = start_in_cluster(run_dir, options, scenario, target_options)
            context.fire_event(component="harness", type=events.LOAD_STARTED,
                               detail=f"{scenario.users or 'ramping'} users, {options.workers} workers")
            progress.load_started = time.time()
            progress.phase = "loading"
            if locust is None:
                locust = start_headless(run_dir, endpoint.connection, options.scenario, options.overrides,
                                        scenario.users, options.workers, options.run_time)
            injector = inject.Injector([inject.parse(s) for s in options.inject], target, context,
                                       lambda: tail.acked_rows)
            injector.start()
            stop_reason = "every batch settled"
            while True:
                tail.poll()
                progress.acked, progress.failed_inserts = tail.acked_rows, tail.failed
                progress.failed_while_down = tail.failed_while_down
                progress.phase = ((gate.phase() if gate else None)
                                  or ("load held: counting rows after the restart" if pause.requested() else "loading"))
                view.update()
                if not locust.running():
                    stop_reason = "Locust finished (all batches settled or --run-time reached)"
                    break
                crash_loop.check_recovery(time.time())
                ruled = stop_rule(stop_events, options.keep_going, target_options.restart) or crash_loop.reason
                if ruled:
                    stop_reason = ruled
                    break
                time.sleep(0.25)
            injector.stop()
            if restart_check:
                restart_check.stop()
            progress.phase = "stopping the load"
            view.update()
            locust.stop()
            tail.poll()
            context.fire_event(component="harness", type=events.LOAD_STOPPED, detail=stop_reason)
            listeners.end_of_load()  # heap profiles before verification changes the heap
            verifying.set()
            progress.phase = "verifying acked rows"
            view.update()
            # The watchers stay on: an OOM kill while the check loads the collection is seen.
            verification = verify_after_load(target, endpoint.connection, scenario, run_dir, options.verify, context)
            for watcher in target.watchers():
                watcher.stop()
    except HarnessError as exc:
        # Anything that kept the target from coming up (pip, the server, the cluster) means the
        # run could not test: INCONCLUSIVE with a report. Bad input stays exit 2.
        if isinstance(exc, UsageError) or exc.exit_code == ExitCode.USAGE:
            raise
        inconclusive = str(exc)
    except (KeyboardInterrupt, Interrupted) as exc:
        status = "ABORTED"
        exit_code = exc.exit_code if isinstance(exc, Interrupted) else int(ExitCode.INTERRUPTED)
    finally:
        if injector:
            injector.stop()
        if restart_check:
            restart_check.stop(wait=False)
        if locust:
            locust.stop(timeout=30)
        listeners.close()
        try:
            target.stop()
        finally:
            recorder.close()
    return finalize_run(run_dir, run_id=run_id, scenario=scenario, facts=facts, began=began,
                        verification=verification, status=status, exit_code=exit_code, inconclusive=inconclusive,
                        console=console)
