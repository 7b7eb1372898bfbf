"""Find the first bad version (or, with find_fix, the first good one) by binary search.

`bisect()` is the search alone: it knows versions and verdicts, and asks an `evaluate`
callable for each verdict, so tests drive it with scripted targets and the command drives it
with real runs. `run_bisect()` is the command's core: it reuses finished runs, records every
tested version and writes reports/bisect-<id>/ (summary.json, bisect.md, index.html).

Verdicts follow `git bisect run`: PASS is good, FAIL is bad, INCONCLUSIVE is "skip" (the
version could not be tested, exit 125), and a skipped version is stepped around by trying
its nearest untested neighbour, as `git bisect skip` does.
"""

from __future__ import annotations

import difflib
import enum
import html
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import ExitCode, TargetError, UsageError
from harness.compare.run_keys import (
    RunKey,
    component_total,
    find_finished_run,
    finished_summary,
    memory_limit_bytes,
    peak_memory_bytes,
)
from harness.rundir import new_numbered_dir, write_json
from harness.units import format_bytes
from harness.judge.verdict import Verdict

log = logging.getLogger(__name__)

__all__ = [
    "BisectResult",
    "Outcome",
    "RunOutcome",
    "SearchState",
    "Step",
    "bisect",
    "check_range",
    "compare_link",
    "describe",
    "read_versions_file",
    "run_bisect",
    "verdict_of",
]


class Outcome(str, enum.Enum):
    """How a bisect ended."""

    FOUND = "FOUND"  # two adjacent versions on either side of the change
    UNDECIDED = "UNDECIDED"  # skipped versions hide the boundary, or an endpoint was INCONCLUSIVE
    WRONG_ENDPOINTS = "WRONG_ENDPOINTS"  # good did not PASS or bad did not FAIL

    @property
    def exit_code(self) -> int:
        """0 found, 125 could not be decided, 2 the endpoints given were not good / bad."""
        return {
            Outcome.FOUND: int(ExitCode.PASS),
            Outcome.UNDECIDED: int(ExitCode.INCONCLUSIVE),
            Outcome.WRONG_ENDPOINTS: int(ExitCode.USAGE),
        }[self]


@dataclass(frozen=True)
class Step:
    """One evaluated version.

    `result` is whatever `evaluate` returned (for run_bisect a RunOutcome with the run
    dir); `remaining` the versions that can still be the boundary after this step.
    """

    number: int
    version: str
    index: int
    role: str  # "good", "bad" (the endpoints), "midpoint" or "neighbour" (around a skip)
    verdict: Verdict
    result: Any
    remaining: tuple[str, ...]


@dataclass(frozen=True)
class BisectResult:
    """The end of a bisect.

    `older` / `newer` are the tightest tested versions on either side of the change: last
    good / first bad normally, last bad / first good with find_fix. When UNDECIDED they
    bound `candidates`, the versions any of which may be the first changed one.
    """

    outcome: Outcome
    reason: str
    find_fix: bool
    versions: tuple[str, ...]  # the searched range, older endpoint to newer endpoint
    steps: tuple[Step, ...]
    older: Step | None = None
    newer: Step | None = None
    candidates: tuple[str, ...] = ()
    report_dir: Path | None = None

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    @property
    def evaluated(self) -> list[str]:
        """The versions evaluated, in the order they were."""
        return [step.version for step in self.steps]

    @property
    def last_good(self) -> Step | None:
        return None if self.find_fix else self.older

    @property
    def first_bad(self) -> Step | None:
        return None if self.find_fix else self.newer

    @property
    def first_good(self) -> Step | None:
        return self.newer if self.find_fix else None

    @property
    def last_bad(self) -> Step | None:
        return self.older if self.find_fix else None

    @property
    def compare_link(self) -> str | None:
        """GitHub compare link between the two bounding versions, for master-YYYYMMDD-<sha> tags."""
        if self.older is None or self.newer is None:
            return None
        return compare_link(self.older.version, self.newer.version)


@dataclass
class SearchState:
    """Where the search stands: indexes into `versions`.

    `lo` is the newest index known to be in the old state (good; bad with find_fix), `hi`
    the oldest known to be in the new state; the change happened in versions[lo+1 .. hi].
    """

    versions: tuple[str, ...]
    lo: int
    hi: int
    skipped: set[int] = field(default_factory=set)

    def remaining(self) -> tuple[str, ...]:
        """The versions that can still be the first one in the new state."""
        return self.versions[self.lo + 1 : self.hi + 1]

    def next_index(self) -> int | None:
        """The untested, unskipped version nearest the midpoint of (lo, hi), or None when done.

        Without skips this is the plain midpoint (rounded down), so a range of N versions
        takes at most ceil(log2 N) steps; a skipped version is replaced by its nearest
        neighbour, the lower one on a tie.
        """
        return _nearest_open(self.lo, self.hi, self.skipped)

    def candidates_after(self, index: int) -> list[str]:
        """What would be tested after `index`: if it is old-state, if new-state, then if skipped.

        The first two are the two possible next midpoints; prefetching them (installing in the
        background) means the next step never waits for an install when nothing is skipped.
        """
        options = (
            _nearest_open(index, self.hi, self.skipped),
            _nearest_open(self.lo, index, self.skipped),
            _nearest_open(self.lo, self.hi, self.skipped | {index}),
        )
        out: list[str] = []
        for option in options:
            if option is not None and option != index and self.versions[option] not in out:
                out.append(self.versions[option])
        return out


def _nearest_open(lo: int, hi: int, skipped: set[int]) -> int | None:
    open_ = [i for i in range(lo + 1, hi) if i not in skipped]
    if not open_:
        return None
    # Twice the distance keeps it integer: |2i - (lo + hi)|; ties go to the lower index.
    return min(open_, key=lambda i: (abs(2 * i - (lo + hi)), i))


def verdict_of(result: Any) -> Verdict:
    """The verdict in what an evaluate callable returned.

    Accepted: a Verdict or its string, a tuple whose first item is one (run_version's
    (verdict, run_dir, summary)), or an object with a `verdict` attribute.
    """
    value = result
    if isinstance(result, tuple) and result:
        value = result[0]
    elif not isinstance(result, (str, Verdict)) and hasattr(result, "verdict"):
        value = result.verdict
    try:
        return Verdict(value)
    except ValueError:
        raise ValueError(f"evaluate returned {result!r}, which carries no PASS/FAIL/INCONCLUSIVE verdict") from None


def _known(versions: Sequence[str]) -> str:
    if len(versions) <= 8:
        return ", ".join(versions)
    return f"{', '.join(versions[:3])}, ..., {', '.join(versions[-3:])} ({len(versions)} versions)"


def _index_of(versions: Sequence[str], version: str, flag: str) -> int:
    try:
        return list(versions).index(version)
    except ValueError:
        close = difflib.get_close_matches(version, list(versions), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"{flag} {version!r} is not a known version; {hint}known: {_known(versions)}") from None


def check_range(versions: Sequence[str], good: str, bad: str, *, find_fix: bool = False) -> tuple[int, int]:
    """Check the bisect input before anything runs; return (older index, newer index).

    `versions` is ordered oldest to newest. Normally `good` is older than `bad`; with
    find_fix the older version is `bad` and the newer `good`. Bad input is a UsageError.
    """
    versions = list(versions)
    if len(versions) < 2:
        raise UsageError(f"bisect needs at least two versions, got {len(versions)}: {_known(versions) or 'none'}")
    seen: set[str] = set()
    for version in versions:
        if version in seen:
            raise UsageError(f"the version list names {version!r} twice; list each version once, oldest first")
        seen.add(version)
    if good == bad:
        raise UsageError(f"--good and --bad are both {good!r}; give two different versions")
    g = _index_of(versions, good, "--good")
    b = _index_of(versions, bad, "--bad")
    if not find_fix and g > b:
        raise UsageError(
            f"--good {good} is newer than --bad {bad}; --good must be the older version "
            "(to find the version that fixed it, use --find-fix with --bad older than --good)"
        )
    if find_fix and b > g:
        raise UsageError(
            f"with --find-fix the older version is bad: --bad {bad} must be older than --good {good} "
            "(to find the version that broke it, drop --find-fix)"
        )
    return (b, g) if find_fix else (g, b)


def bisect(
    versions: Sequence[str],
    good: str,
    bad: str,
    evaluate: Callable[[str], Any],
    *,
    find_fix: bool = False,
    on_step: Callable[[Step], None] | None = None,
    on_candidates: Callable[[list[str]], None] | None = None,
) -> BisectResult:
    """Binary-search `versions` (oldest first) for the first bad version, or the first good one.

    Both endpoints are evaluated first; if good is not PASS or bad is not FAIL the search
    stops there (WRONG_ENDPOINTS, or UNDECIDED when an endpoint is INCONCLUSIVE). Each
    version is evaluated at most once, through `evaluate` (which returns a verdict, see
    verdict_of), so a caching `evaluate` makes a repeated bisect evaluate nothing. Without
    skips at most ceil(log2 N) + 2 versions are evaluated.

    `on_candidates(versions)` is called just before each evaluation with what may be
    evaluated after it (see SearchState.candidates_after), for prefetching; `on_step(step)`
    just after each.
    """
    lo, hi = check_range(versions, good, bad, find_fix=find_fix)
    all_versions = tuple(versions)
    old_state, new_state = (Verdict.FAIL, Verdict.PASS) if find_fix else (Verdict.PASS, Verdict.FAIL)
    old_name, new_name = ("bad", "good") if find_fix else ("good", "bad")
    state = SearchState(all_versions, lo, hi)
    steps: list[Step] = []

    def evaluate_one(index: int, role: str, upcoming: list[str]) -> Step:
        if on_candidates is not None:
            on_candidates(upcoming)
        log.info("bisect: testing %s (%s)", all_versions[index], role)
        result = evaluate(all_versions[index])
        verdict = verdict_of(result)
        if role in ("midpoint", "neighbour"):
            if verdict == old_state:
                state.lo = index
            elif verdict == new_state:
                state.hi = index
            else:
                state.skipped.add(index)
        step = Step(len(steps) + 1, all_versions[index], index, role, verdict, result, state.remaining())
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step

    older = evaluate_one(lo, old_name, [all_versions[hi]])
    first_mid = state.next_index()
    newer = evaluate_one(hi, new_name, [] if first_mid is None else [all_versions[first_mid]])

    def done(outcome: Outcome, reason: str, **extra: Any) -> BisectResult:
        return BisectResult(outcome, reason, find_fix, all_versions[lo : hi + 1], tuple(steps), **extra)

    wrong = [f"--{name} {s.version} was {s.verdict.value}, not {want.value}"
             for s, name, want in ((older, old_name, old_state), (newer, new_name, new_state))
             if s.verdict not in (want, Verdict.INCONCLUSIVE)]
    if wrong:
        hint = ""
        if older.verdict == new_state and newer.verdict == old_state:
            hint = ("; the older version behaves as the newer should: drop --find-fix"
                    if find_fix else "; to find the version that fixed it, use --find-fix")
        return done(Outcome.WRONG_ENDPOINTS, "; ".join(wrong) + hint)
    unsure = [f"--{name} {s.version} was INCONCLUSIVE" for s, name in ((older, old_name), (newer, new_name))
              if s.verdict == Verdict.INCONCLUSIVE]
    if unsure:
        return done(Outcome.UNDECIDED, "; ".join(unsure) + "; choose endpoints that can be tested")

    while (index := state.next_index()) is not None:
        role = "midpoint" if 2 * index in (state.lo + state.hi, state.lo + state.hi - 1) else "neighbour"
        step = evaluate_one(index, role, state.candidates_after(index))
        if step.verdict == old_state:
            older = step
        elif step.verdict == new_state:
            newer = step

    if state.hi - state.lo == 1:
        reason = f"first {new_name} version: {newer.version} (last {old_name}: {older.version})"
        return done(Outcome.FOUND, reason, older=older, newer=newer)
    candidates = state.remaining()
    # Only the skips inside the final range hide the boundary; others were stepped around.
    skipped = [all_versions[i] for i in sorted(state.skipped) if state.lo < i < state.hi]
    reason = (f"could not be decided: {', '.join(skipped)} {'was' if len(skipped) == 1 else 'were'} INCONCLUSIVE; "
              f"the first {new_name} version is one of {', '.join(candidates)} (last {old_name}: {older.version})")
    return done(Outcome.UNDECIDED, reason, older=older, newer=newer, candidates=candidates)


# Milvus CI image tags: <branch>-YYYYMMDD-<short sha>, optionally with an -amd64/-arm64 suffix.
_DATED_TAG = re.compile(r"^(?P<branch>[A-Za-z0-9._]+)-(?P<date>\d{8})-(?P<sha>[0-9a-f]{7,40})(?:-(?:amd64|arm64))?$")
COMPARE_URL = "https://github.com/milvus-io/milvus/compare/{older}...{newer}"


def compare_link(older: str, newer: str) -> str | None:
    """The milvus-io/milvus compare link between two dated image tags (older first), else None.

    master-20250310-1a2b3c4d and master-20250312-5735c3ef give
    https://github.com/milvus-io/milvus/compare/1a2b3c4d...5735c3ef.
    """
    a, b = _DATED_TAG.match(older), _DATED_TAG.match(newer)
    if not a or not b or a["sha"] == b["sha"]:
        return None
    return COMPARE_URL.format(older=a["sha"], newer=b["sha"])


def read_versions_file(path: Path) -> list[str]:
    """Read an ordered version list (image tags, oldest first): one per line, # comments allowed."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read --versions-file {path}: {exc.strerror or exc}") from None
    versions = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    versions = [v for v in versions if v]
    if not versions:
        raise UsageError(f"--versions-file {path} lists no versions; write one tag per line, oldest first")
    return versions


# --- the command's core: real runs, reuse, and the report ------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """What one version's run gave the bisect: its verdict, run directory and summary."""

    verdict: Verdict
    run_dir: Path | None
    summary: Mapping[str, Any]
    reused: bool = False


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
    page = _Page(out, tuple(versions), good, bad, find_fix, dict(context or {}))

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


def describe(result: BisectResult) -> list[str]:
    """Console lines for the end of a bisect: the outcome, both sides with their run dirs, links."""
    lines = [("bisect: " if result.outcome != Outcome.WRONG_ENDPOINTS else "bisect stopped: ") + result.reason]
    names = ("last bad", "first good") if result.find_fix else ("last good", "first bad")
    if result.outcome == Outcome.FOUND:
        for name, step in zip(names, (result.older, result.newer)):
            run_dir = getattr(step.result, "run_dir", None) if step else None
            if step is not None:
                lines.append(f"  {name}: {step.version}" + (f"  ({run_dir})" if run_dir else ""))
    if result.compare_link:
        lines.append(f"  changes: {result.compare_link}")
    if result.report_dir is not None:
        lines.append(f"  report: {result.report_dir / 'index.html'}")
    return lines


# --- the report page ----------------------------------------------------------------------------

_COLOURS = {Verdict.PASS: "#2e7d32", Verdict.FAIL: "#c62828", Verdict.INCONCLUSIVE: "#757575"}


def _write_text(path: Path, text: str) -> None:
    # Same discipline as write_json: a reader never sees half a page.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _outcome_of(step: Step) -> RunOutcome:
    if isinstance(step.result, RunOutcome):
        return step.result
    return RunOutcome(step.verdict, None, {})


@dataclass
class _Page:
    """Renders reports/bisect-<id>/ from the steps so far; rewritten after every step."""

    path: Path
    versions: tuple[str, ...]
    good: str
    bad: str
    find_fix: bool
    context: dict[str, Any]
    steps: list[Step] = field(default_factory=list)

    @property
    def range(self) -> tuple[str, ...]:
        ends = sorted((self.versions.index(self.good), self.versions.index(self.bad)))
        return self.versions[ends[0] : ends[1] + 1]

    def _link(self, run_dir: Path | None) -> str | None:
        if run_dir is None:
            return None
        target = run_dir / "report.html" if (run_dir / "report.html").exists() else run_dir
        return os.path.relpath(target, self.path)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for step in self.steps:
            run = _outcome_of(step)
            summary = run.summary or {}
            rows.append({
                "step": step.number,
                "version": step.version,
                "role": step.role,
                "verdict": step.verdict.value,
                "peak_memory_bytes": peak_memory_bytes(summary),
                "limit_bytes": memory_limit_bytes(summary),
                "oom_kills": component_total(summary, "oom_kills"),
                "restarts": component_total(summary, "restarts"),
                "rows_acked": (summary.get("rows") or {}).get("acked") if isinstance(summary.get("rows"), Mapping) else None,
                "reasons": [str(r) for r in summary.get("reasons") or []],
                "run_dir": None if run.run_dir is None else str(run.run_dir),
                "reused": run.reused,
            })
        return rows

    def write(self, status: str, result: BisectResult | None = None, reason: str | None = None) -> None:
        rows = self.rows()

        def side(step: Step | None) -> dict[str, Any] | None:
            if step is None:
                return None
            run_dir = _outcome_of(step).run_dir
            return {"version": step.version, "run_dir": None if run_dir is None else str(run_dir)}

        summary = {
            "kind": "bisect",
            "id": self.path.name.removeprefix("bisect-"),
            "status": status,
            "mode": "find-fix" if self.find_fix else "first-bad",
            "good": self.good,
            "bad": self.bad,
            "range": list(self.range),
            "outcome": result.outcome.value if result else None,
            "exit_code": result.exit_code if result else None,
            "reason": result.reason if result else reason,
            "tested": rows,
            "last_good": side(result.last_good) if result else None,
            "first_bad": side(result.first_bad) if result else None,
            "last_bad": side(result.last_bad) if result else None,
            "first_good": side(result.first_good) if result else None,
            "candidates": list(result.candidates) if result else [],
            "compare_link": result.compare_link if result else None,
            "context": self.context,
        }
        write_json(self.path / "summary.json", summary)
        svg = self.chart(rows, result)
        _write_text(self.path / "peak-memory.svg", svg)
        _write_text(self.path / "bisect.md", self.markdown(summary, rows))
        _write_text(self.path / "index.html", self.html(summary, rows, svg))

    def _title(self) -> str:
        return "Bisect: first good version (find fix)" if self.find_fix else "Bisect: first bad version"

    def _headline(self, summary: Mapping[str, Any]) -> str:
        if summary["status"] == "RUNNING":
            return f"running: {len(summary['tested'])} version(s) tested so far"
        return str(summary["reason"] or summary["status"])

    def markdown(self, summary: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
        def cell(text: Any) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"# {self._title()}", "", f"**{cell(summary['status'])}**: {cell(self._headline(summary))}", ""]
        lines += [f"- {k}: {cell(v)}" for k, v in [("good", self.good), ("bad", self.bad), *self.context.items()]]
        if summary["compare_link"]:
            lines.append(f"- changes: <{summary['compare_link']}>")
        lines += ["", "![peak memory of each tested version](peak-memory.svg)", "",
                  "| version | verdict | step | peak memory | OOM kills | restarts | rows acked | reasons | run |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for row in sorted(rows, key=lambda r: self.versions.index(r["version"])):
            link = self._link(Path(row["run_dir"])) if row["run_dir"] else None
            run = f"[{cell(Path(row['run_dir']).name)}]({link})" if link else "-"
            lines.append("| " + " | ".join([
                f"`{cell(row['version'])}`", row["verdict"], str(row["step"]),
                format_bytes(row["peak_memory_bytes"]), _dash(row["oom_kills"]), _dash(row["restarts"]),
                _dash(row["rows_acked"]), cell("; ".join(row["reasons"]) or "-"),
                run + (" (reused)" if row["reused"] else ""),
            ]) + " |")
        return "\n".join(lines) + "\n"

    def html(self, summary: Mapping[str, Any], rows: list[dict[str, Any]], svg: str) -> str:
        e = html.escape
        facts = [("good", self.good), ("bad", self.bad), *self.context.items()]
        body = [f"<h1>{e(self._title())}</h1>",
                f'<p class="outcome {e(str(summary["outcome"] or summary["status"]).lower())}">'
                f"<b>{e(str(summary['status']))}</b>: {e(self._headline(summary))}</p>",
                "<dl>" + "".join(f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in facts) + "</dl>"]
        if summary["compare_link"]:
            url = e(summary["compare_link"])
            body.append(f'<p>Commits in the boundary range: <a href="{url}">{url}</a></p>')
        body.append(f'<figure>{svg}<figcaption>Peak memory of each tested version (highest component).</figcaption></figure>')
        head = ["version", "verdict", "step", "peak memory", "OOM kills", "restarts", "rows acked", "reasons", "run"]
        table = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
        for row in sorted(rows, key=lambda r: self.versions.index(r["version"])):
            link = self._link(Path(row["run_dir"])) if row["run_dir"] else None
            run = f'<a href="{e(link)}">{e(Path(row["run_dir"]).name)}</a>' if link else "-"
            verdict = row["verdict"]
            table.append(
                "<tr>" + "".join([
                    f"<td><code>{e(row['version'])}</code></td>",
                    f'<td class="v-{verdict.lower()}">{verdict}</td>',
                    f"<td>{row['step']}</td>",
                    f"<td>{e(format_bytes(row['peak_memory_bytes']))}</td>",
                    f"<td>{_dash(row['oom_kills'])}</td>",
                    f"<td>{_dash(row['restarts'])}</td>",
                    f"<td>{_dash(row['rows_acked'])}</td>",
                    f"<td>{e('; '.join(row['reasons']) or '-')}</td>",
                    f"<td>{run}{' (reused)' if row['reused'] else ''}</td>",
                ]) + "</tr>")
        table.append("</tbody></table>")
        style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
                 "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dd{margin:0}"
                 + "".join(f".v-{v.value.lower()}{{color:{c};font-weight:bold}}" for v, c in _COLOURS.items()))
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{e(self._title())}</title><style>{style}</style></head><body>\n"
                + "\n".join(body + table) + "\n</body></html>\n")

    def chart(self, rows: list[dict[str, Any]], result: BisectResult | None) -> str:
        """An inline SVG dot chart: every version of the range on x, peak memory of tested ones on y."""
        e = html.escape
        span = self.range
        position = {version: i for i, version in enumerate(span)}
        # Version labels run vertically under their dot, so neighbours overlap only when the
        # dots nearly touch; the bottom margin grows with the longest label (~6 px a character).
        longest = max((len(r["version"]) for r in rows), default=4)
        left, right, top, bottom, plot_h = 80, 100, 28, 16 + 6 * longest, 190
        width, height = 780, top + plot_h + bottom
        plot_w = width - left - right
        peaks = [r["peak_memory_bytes"] for r in rows if r["peak_memory_bytes"]]
        limits = [r["limit_bytes"] for r in rows if r["limit_bytes"]]
        # Gridlines at a power-of-two step (256 MiB, 512 MiB, 1 GiB, ...) so labels read round.
        highest = max(peaks + limits + [2**20]) * 1.05
        step = 2**20
        while highest / step > 5:
            step *= 2
        ticks = math.ceil(highest / step)
        top_value = ticks * step

        def x(version: str) -> float:
            return left + (plot_w * (position[version] + 0.5) / len(span))

        def y(value: float) -> float:
            return top + plot_h * (1 - value / top_value)

        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" role="img" aria-label="peak memory per tested version" '
                 'font-family="sans-serif" font-size="11">',
                 f'<text x="{left}" y="14" font-weight="bold">peak memory</text>']
        for n, (verdict, colour) in enumerate(_COLOURS.items()):
            lx = left + 110 + n * 100
            parts.append(f'<circle cx="{lx}" cy="10" r="4" fill="{colour}"/>'
                         f'<text x="{lx + 8}" y="14">{verdict.value}</text>')
        for i in range(ticks + 1):
            value = step * i
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e0e0e0"/>'
                         f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{e(format_bytes(value))}</text>')
        if limits:
            # Labelled in the right margin, where no dot can sit on it.
            limit = max(limits)
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
                         'stroke="#c62828" stroke-dasharray="6 4"/>'
                         f'<text x="{width - right + 6}" y="{y(limit) + 4:.1f}" fill="#c62828">'
                         f'limit {e(format_bytes(limit))}</text>')
        tested = {r["version"] for r in rows}
        for version in span:
            if version not in tested:  # untested versions: a tick, so the spacing shows the range
                parts.append(f'<line x1="{x(version):.1f}" x2="{x(version):.1f}" y1="{top + plot_h}" '
                             f'y2="{top + plot_h + 4}" stroke="#9e9e9e"><title>{e(version)}: not tested</title></line>')
        if result is not None and result.older and result.newer:
            a, b = x(result.older.version), x(result.newer.version)
            if result.outcome == Outcome.FOUND:  # the change happened between these two dots
                parts.append(f'<line x1="{(a + b) / 2:.1f}" x2="{(a + b) / 2:.1f}" y1="{top}" y2="{top + plot_h}" '
                             'stroke="#424242" stroke-dasharray="3 3"/>')
            else:  # undecided: shade the versions any of which may be the first changed one
                parts.append(f'<rect x="{a:.1f}" y="{top}" width="{b - a:.1f}" height="{plot_h}" fill="#9e9e9e" '
                             'fill-opacity="0.18"><title>undecided: the change is in here</title></rect>')
        for row in rows:
            verdict = Verdict(row["verdict"])
            cx, peak = x(row["version"]), row["peak_memory_bytes"]
            cy = y(peak) if peak else top + plot_h
            # No peak recorded (the version never started): a hollow dot on the axis.
            fill = _COLOURS[verdict] if peak else "white"
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{fill}" stroke="{_COLOURS[verdict]}" '
                         f'stroke-width="2"><title>{e(row["version"])}: {verdict.value}, peak '
                         f'{e(format_bytes(peak))}</title></circle>'
                         f'<text transform="translate({cx + 3.5:.1f},{top + plot_h + 8}) rotate(-90)" '
                         f'text-anchor="end" font-size="10">{e(row["version"])}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#424242"/>')
        parts.append("</svg>")
        return "".join(parts)


def _dash(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
