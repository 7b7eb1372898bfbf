"""A run's heap profiles read back: which captures it has, and the top allocation sites at the
last capture before its first death, with their growth since the component's first capture.

`top_sites(run_dir)` is the public seam for the report's "where the memory went" section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.profiles import proto, sites
from harness.profiles.capture import STALL, THRESHOLDS
from harness.profiles.sites import Site
from harness.rundir import RunDir, read_jsonl
from harness.watch import events

SUFFIX = ".pb.gz"
#: Event types that end a component's heap: captures after it belong to a new process.
_DEATHS = (events.OOM_KILLED, events.EXITED, events.MEMORY_STALL)


@dataclass(frozen=True)
class Capture:
    """One stored profile: profiles/<component>-<label>.pb.gz, `t` its capture time (epoch s)."""

    component: str
    label: str
    path: Path
    t: float

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(SUFFIX)

    def profile(self) -> proto.Profile:
        try:
            return proto.decode(self.path.read_bytes())
        except proto.ProfileError as exc:
            raise UsageError(f"{self.path} is not a heap profile: {exc}") from None


def _order(label: str) -> int:
    return THRESHOLDS.index(int(label)) if label.isdigit() and int(label) in THRESHOLDS else len(THRESHOLDS)


def read_capture(path: Path) -> Capture:
    """A capture from its file; its time is the profile's own (time_nanos), else the file's."""
    stem = path.name.removesuffix(SUFFIX)
    component, _, label = stem.rpartition("-")
    try:
        nanos = proto.decode(path.read_bytes()).time_nanos
    except proto.ProfileError as exc:
        raise UsageError(f"{path} is not a heap profile: {exc}") from None
    return Capture(component or stem, label, path, nanos / 1e9 if nanos else path.stat().st_mtime)


def captures(run_dir: Path) -> list[Capture]:
    """The run's captures in time order (thresholds crossed together: 50 before 80 before 95)."""
    directory = RunDir(run_dir).profiles
    found = [read_capture(p) for p in sorted(directory.glob(f"*{SUFFIX}"))] if directory.is_dir() else []
    return sorted(found, key=lambda c: (c.t, _order(c.label), c.component))


def first_death(run_dir: Path) -> tuple[str, float] | None:
    """(component, time) of the run's first OOM kill, exit or stall, from events.jsonl."""
    path = RunDir(run_dir).events
    if not path.exists():
        return None
    for event in read_jsonl(path):
        if event.get("type") in _DEATHS and event.get("component") != "harness":
            return event["component"], float(event["t"])
    return None


def evidence(run_dir: Path) -> tuple[Capture, Capture | None] | None:
    """The capture to explain the run with and the earlier one to measure growth against: the
    last capture before the first death (of the component that died; for a stall, its stall
    capture), else the run's last; the
    baseline is that component's first capture when it is an earlier one. None without captures."""
    found = captures(run_dir)
    death = first_death(run_dir)
    if death is not None:
        # A stall leaves the server alive: its own capture, just after, is the stuck heap.
        before = [c for c in found if c.component == death[0] and (c.t <= death[1] or c.label == STALL)]
        found = before or found
    if not found:
        return None
    last = found[-1]
    first = next(c for c in found if c.component == last.component)
    return last, (first if first.path != last.path and first.t < last.t else None)


def top_sites(run_dir: Path, n: int = 10, by: str = sites.BY_FUNCTION) -> list[Site]:
    """Top `n` allocation sites (plus an "other sites" row: they add up to the profile's in-use
    bytes) at the last capture before the first death, with growth since the first capture of
    the same component; [] when the run has no captures."""
    chosen = evidence(run_dir)
    if chosen is None:
        return []
    last, first = chosen
    before = sites.by(first.profile(), by) if first is not None else None
    return sites.top(sites.by(last.profile(), by), n, before)


def resolve(spec: str, run_dir: Path | None = None) -> Capture:
    """A capture named on the command line: a .pb.gz file, a run directory (its evidence
    capture), or a capture's name in `run_dir` ("standalone-80")."""
    path = Path(spec)
    if path.is_dir():
        chosen = evidence(path)
        if chosen is None:
            raise UsageError(f"{spec} has no heap profiles (no {path / 'profiles'}/*{SUFFIX})")
        return chosen[0]
    if path.is_file():
        return read_capture(path)
    if run_dir is not None:
        named = [c for c in captures(run_dir) if c.name == spec]
        if named:
            return named[0]
        known = ", ".join(c.name for c in captures(run_dir)) or "none"
        raise UsageError(f"{spec!r} is not a capture of {run_dir}; it has: {known}")
    raise UsageError(f"{spec!r} is not a heap profile file or a run directory")
