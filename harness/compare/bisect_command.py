"""`milvus-harness bisect`'s core: harness.compare.bisect_search's search driven by real runs of one scenario.

harness.compare.bisect_search holds the search alone and harness/report/bisect_page.py its
report; this module gives the search what a real bisect needs: `run_bisect` reuses finished
runs, records every tested version and writes reports/bisect-<id>/, and `run_bisect_command`
adds the ordered version list of the target, one `lifecycle.run` per version with the run key
that lets a repeated bisect reuse every run, and, on the embedded target, a background
thread that installs the next candidates while the current one runs (an install takes about a
minute; a run several).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rich.console import Console

from harness.load import ramp
from harness.profiles.capture import describe_schedule
from harness.run import lifecycle
from harness.compare.bisect_search import BisectResult, RunOutcome, Step, bisect, check_range, read_versions_file
from harness.errors import ExitCode, HarnessError, Interrupted, TargetError, UsageError
from harness.compare.run_keys import RunKey, find_finished_run, finished_summary, peak_memory_bytes
from harness.report.bisect_page import BisectPage
from harness.run.lifecycle import RunOptions
from harness.rundir import new_numbered_dir
from harness.units import format_bytes
from harness.judge.verdict import Verdict

log = logging.getLogger(__name__)

__all__ = ["Prefetcher", "RunVersion", "bisect_versions", "run_bisect", "run_bisect_command"]


# --- the command's core: real runs, reuse, and the report ------------------------------------

#: run_version(version) -> (verdict, run dir, summary.json contents)
RunVersion = Callable[[str], tuple[Verdict | str, Path | None, Mapping[str, Any]]]


def _new_bisect_dir(report_dir: Path, bisect_id: str | None) -> Path:
    return new_numbered_dir(report_dir, "bisect-", bisect_id or time.strftime("%Y%m%d-%H%M%S"))


def run_bisect(
    versions: Sequence[str],
    good: str,
    bad: str,
    run_version: RunVersion,
    report_dir: Path,
    *,
    find_fix: bool = False,
    key_for: Callable[[str], RunKey] | None = None,
    bisect_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_candidates: Callable[[list[str]], None] | None = None,
) -> BisectResult:
    """Bisect with real runs and write reports/bisect-<id>/; returns the result (see .exit_code).

    `run_version(version)` runs the scenario on one version and returns (verdict, run dir,
    summary). With `key_for(version)`, a finished run with that key under `report_dir` is
    reused instead of running again (find_finished_run), so repeating a bisect runs nothing.
    A TargetError from run_version (the version could not be started) counts as INCONCLUSIVE;
    any other error stops the bisect after writing the report with status ABORTED.
    `context` (target, scenario, memory limit, ...) is shown at the top of the report.
    """
    check_range(versions, good, bad, find_fix=find_fix)  # bad input fails before any directory exists
    out = _new_bisect_dir(report_dir, bisect_id)
    page = BisectPage(out, tuple(versions), good, bad, find_fix, dict(context or {}))

    def evaluate(version: str) -> RunOutcome:
        if key_for is not None:
            reused = find_finished_run(report_dir, key_for(version))
            summary = finished_summary(reused) if reused is not None else None
            if reused is not None and summary is not None:
                log.info("bisect: reusing %s for %s", reused, version)
                return RunOutcome(Verdict(summary["verdict"]), reused, summary, reused=True)
        try:
            verdict, run_dir, summary = run_version(version)
        except TargetError as exc:
            # A version that cannot start (too old for the scenario, install failed) is a skip.
            return RunOutcome(Verdict.INCONCLUSIVE, None, {"reasons": [str(exc)]})
        return RunOutcome(Verdict(verdict), None if run_dir is None else Path(run_dir), summary or {})

    def announce(candidates: list[str]) -> None:
        # Nothing to install in the background for a version whose run will be reused.
        if key_for is not None:
            candidates = [v for v in candidates if find_finished_run(report_dir, key_for(v)) is None]
        if on_candidates is not None:
            on_candidates(candidates)

    def step_done(step: Step) -> None:
        page.steps.append(step)
        page.write(status="RUNNING")
        if on_step is not None:
            on_step(step)

    try:
        result = bisect(versions, good, bad, evaluate, find_fix=find_fix,
                        on_step=step_done, on_candidates=announce)
    except BaseException as exc:
        page.write(status="ABORTED", reason=f"stopped: {exc}" if str(exc) else f"stopped: {type(exc).__name__}")
        raise
    result = replace(result, report_dir=out)
    page.write(status="FINISHED", result=result)
    return result


class Prefetcher:
    """Installs embedded Milvus versions one at a time in a background thread.

    `want(versions)` replaces what is still queued (the search moved on, so older wishes are
    moot); the version being installed finishes. Install errors are logged, not raised: the
    run of that version installs it again and reports the error as its verdict.
    Use as a context manager: leaving it drops the queue and waits for the install in progress,
    so no pip process outlives the command.
    """

    def __init__(self, install: Callable[[str], Any] | None = None) -> None:
        if install is None:
            from harness.targets.install import ensure_installed

            install = ensure_installed
        self._install = install
        self._queue: list[str] = []
        self._done: set[str] = set()
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="milvus-prefetch", daemon=True)
        self._thread.start()
        #: Versions installed (or found installed) by this prefetcher, in order.
        self.installed: list[str] = []

    def want(self, versions: Sequence[str]) -> None:
        with self._cond:
            self._queue = [v for v in versions if v not in self._done]
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                version = self._queue.pop(0)
                self._done.add(version)
            try:
                self._install(version)
                self.installed.append(version)
                log.info("prefetch: milvus %s is installed", version)
            except Exception as exc:  # noqa: BLE001  # the run of this version will say why
                log.warning("prefetch: installing milvus %s failed: %s", version, exc)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue = []
            self._cond.notify()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bisect_versions(target: str, versions_file: Path | None) -> list[str]:
    """The ordered version list of a target, oldest first.

    embedded: the published `milvus` versions, or those listed in versions_file (each must be
    published); kind: versions_file is required (image tags, e.g. dated master tags, in order).
    """
    if target == "external":
        raise UsageError("bisect needs a target it can start at each version: --target embedded or kind")
    if target == "kind":
        if versions_file is None:
            raise UsageError("bisect on kind needs --versions-file: image tags one per line, oldest first")
        return read_versions_file(versions_file)
    from harness.targets.install import check_supported, published_versions

    published = published_versions()
    if versions_file is None:
        return published
    versions = read_versions_file(versions_file)
    for version in versions:
        check_supported(version)
    unknown = [v for v in versions if v not in published]
    if unknown:
        raise UsageError(f"--versions-file {versions_file} names unpublished milvus version(s) "
                         f"{', '.join(unknown)}; published: {', '.join(published)}")
    return versions


def _options_for(base: RunOptions, version: str) -> RunOptions:
    return replace(base, target=replace(base.target, milvus_version=version), run_id=None)


def run_bisect_command(base: RunOptions, good: str, bad: str, console: Console, *, find_fix: bool = False,
                       versions_file: Path | None = None, prefetch: bool = True,
                       bisect_id: str | None = None) -> BisectResult:
    """Check the input, then bisect with real runs under base.report_dir; see BisectResult.exit_code.

    Bad input (unknown versions, good == bad, endpoints in the wrong order, a bad scenario
    override) raises UsageError before anything is created or started.
    """
    if base.target.milvus_version is not None:
        raise UsageError("bisect chooses the versions itself: drop --milvus-version and give --good and --bad")
    versions = bisect_versions(base.target.target, versions_file)
    scenario, target = lifecycle.prepare(base)
    check_range(versions, good, bad, find_fix=find_fix)

    def key_for(version: str) -> RunKey:
        options = _options_for(base, version)
        s, t = lifecycle.prepare(options)
        return lifecycle.run_key(s, t, version, options.overrides)

    def run_version(version: str) -> tuple[Verdict, Path, Mapping[str, Any]]:
        console.print(f"[bold]bisect[/] running milvus {version}")
        try:
            result = lifecycle.run(_options_for(base, version), console)
        except HarnessError as exc:
            # An install or start that failed outside the run's own error handling (pip could
            # not fetch the version, say): that version cannot be tested, a skip.
            if isinstance(exc, (UsageError, Interrupted)) or exc.exit_code != ExitCode.INCONCLUSIVE:
                raise
            raise TargetError(str(exc)) from None
        if result.status == "ABORTED" or result.verdict is None:
            code = int(result.summary.get("exit_code") or ExitCode.INTERRUPTED)
            if code > 128 and code != ExitCode.INTERRUPTED:
                raise Interrupted(code - 128)
            raise KeyboardInterrupt
        return result.verdict, result.run_dir, result.summary

    def on_step(step: Step) -> None:
        run = step.result
        where = getattr(run, "run_dir", None)
        summary = getattr(run, "summary", None) or {}
        peak = peak_memory_bytes(summary) if isinstance(summary, Mapping) else None
        reasons = [str(r) for r in summary.get("reasons") or []] if isinstance(summary, Mapping) else []
        why = ""
        if reasons and step.verdict != Verdict.PASS:
            why = f" ({reasons[0] if len(reasons[0]) <= 160 else reasons[0][:159] + '…'})"
        console.print(f"bisect step {step.number}: {step.version} ({step.role}) {step.verdict.value}{why}"
                      + (f", peak {format_bytes(peak)}" if peak else "")
                      + (" (reused)" if getattr(run, "reused", False) else "")
                      + (f"; {len(step.remaining)} candidate(s) left" if step.role not in ("good", "bad") else "")
                      + (f"  {where}" if where else ""),
                      soft_wrap=True)

    context = {
        "target": base.target.target,
        "scenario": f"{scenario.name} ({scenario.digest()})",
        "memory limit": format_bytes(target.memory_limit) if target.memory_limit else "none",
        "overrides": ", ".join(f"{k}={v}" for k, v in base.overrides.items()) or "none",
        "users": ramp.describe_setting(scenario.users),
        "heap profiles": describe_schedule(base.profile_every),
        "command": base.command or "-",
    }
    fetcher = Prefetcher() if prefetch and base.target.target == "embedded" else None
    try:
        return run_bisect(versions, good, bad, run_version, base.report_dir, find_fix=find_fix, key_for=key_for,
                          bisect_id=bisect_id, context=context, on_step=on_step,
                          on_candidates=fetcher.want if fetcher else None)
    finally:
        if fetcher is not None:
            fetcher.close()
