"""Find the first bad version (or, with find_fix, the first good one) by binary search.

`bisect()` is the search alone: it knows versions and verdicts, and asks an `evaluate`
callable for each verdict, so tests drive it with scripted targets and the command drives it
with real runs (harness/compare/bisect_command.py: `run_bisect()` reuses finished runs and
writes reports/bisect-<id>/ through harness/report/bisect_page.py).

Verdicts follow `git bisect run`: PASS is good, FAIL is bad, INCONCLUSIVE is "skip" (the
version could not be tested, exit 125), and a skipped version is stepped around by trying
its nearest untested neighbour, as `git bisect skip` does.
"""

from __future__ import annotations

import difflib
import enum
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import ExitCode, UsageError
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


@dataclass(frozen=True)
class RunOutcome:
    """What one version's run gave the bisect: its verdict, run directory and summary."""

    verdict: Verdict
    run_dir: Path | None
    summary: Mapping[str, Any]
    reused: bool = False


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
