"""Run keys and the reuse of finished runs (docs/design.md, "Contracts").

A run is keyed by (target, Milvus version or image, scenario hash, memory limit, overrides).
`matrix` and `bisect` reuse a finished run with the same key instead of running it again,
as asv reuses a stored result for the same (machine, commit, environment). A run whose key
differs in anything, or whose files carry another schema version, is never reused: it is
"not comparable", not "close enough".
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.rundir import SCHEMA_VERSION, read_json

log = logging.getLogger(__name__)

#: The verdicts of a run that finished and decided something (or decided it could not).
FINISHED_VERDICTS = frozenset({"PASS", "FAIL", "INCONCLUSIVE"})

# How many hex digits of sha256 a digest keeps: 64 bits is plenty for one report dir and
# still short enough for a directory name.
_DIGEST_CHARS = 16


def _override_text(value: Any) -> str:
    """One override value as text, so `--set shards=16` and a parsed 16 give the same key."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _normalise_overrides(
    overrides: Mapping[str, Any] | Iterable[tuple[str, Any]] | Iterable[list[Any]],
) -> tuple[tuple[str, str], ...]:
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else [tuple(p) for p in overrides]
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"override {pair!r} is not a (key, value) pair")
        key, value = pair
        key = str(key)
        if key in seen:
            raise ValueError(f"override {key!r} is given twice")
        seen.add(key)
        out.append((key, _override_text(value)))
    return tuple(sorted(out))


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run.

    `overrides` may be given as a mapping or pairs; it is stored as a tuple of (key, text)
    pairs sorted by key, so the order of `--set` flags does not change the key.
    `milvus_version` is the published version (embedded) or the image tag (kind); None only
    for an external target of unknown version. `memory_limit_bytes` is None when the run
    set no limit of its own.
    """

    target: str
    milvus_version: str | None
    scenario_hash: str
    memory_limit_bytes: int | None
    overrides: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        # A frozen dataclass: normalising in place is the one place object.__setattr__ is fine.
        object.__setattr__(self, "overrides", _normalise_overrides(self.overrides))
        if self.memory_limit_bytes is not None:
            if isinstance(self.memory_limit_bytes, bool) or not isinstance(self.memory_limit_bytes, int):
                raise ValueError(f"memory_limit_bytes {self.memory_limit_bytes!r} is not a whole number of bytes")

    def to_json(self) -> dict[str, Any]:
        """The key as plain JSON, as run.json stores it under "key"."""
        return {
            "target": self.target,
            "milvus_version": self.milvus_version,
            "scenario_hash": self.scenario_hash,
            "memory_limit_bytes": self.memory_limit_bytes,
            "overrides": [[k, v] for k, v in self.overrides],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunKey":
        """Read a key written by to_json(); a malformed one raises ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run key is a JSON object, not {type(data).__name__}")
        missing = [name for name in ("target", "milvus_version", "scenario_hash", "memory_limit_bytes")
                   if name not in data]
        if missing:
            raise ValueError(f"run key lacks {', '.join(missing)}")
        overrides = data.get("overrides") or []
        if not isinstance(overrides, (list, tuple, Mapping)):
            raise ValueError(f"run key overrides {overrides!r} is not a list of pairs")
        return cls(
            target=str(data["target"]),
            milvus_version=None if data["milvus_version"] is None else str(data["milvus_version"]),
            scenario_hash=str(data["scenario_hash"]),
            memory_limit_bytes=data["memory_limit_bytes"],
            overrides=overrides,  # type: ignore[arg-type]  # normalised in __post_init__
        )

    def digest(self) -> str:
        """A short, stable hex digest of the key (the same on every machine and Python)."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:_DIGEST_CHARS]


def finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a run that finished with a verdict, or None (running, aborted, unreadable)."""
    path = run_dir / "summary.json"
    try:
        summary = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return None
    if not isinstance(summary, dict) or summary.get("schema_version") != SCHEMA_VERSION:
        return None
    # An ABORTED run (Ctrl-C, harness killed) says nothing about the version: run it again.
    if summary.get("status") != "FINISHED" or summary.get("verdict") not in FINISHED_VERDICTS:
        return None
    return summary


def run_key_of(run_dir: Path) -> RunKey | None:
    """The key stored in run_dir/run.json, or None if there is none this harness can compare."""
    path = run_dir / "run.json"
    try:
        data = read_json(path)
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or "key" not in data:
            return None
        return RunKey.from_json(data["key"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return None


def find_finished_run(report_dir: Path, key: RunKey) -> Path | None:
    """The newest run under report_dir with exactly this key that finished with a verdict.

    Scans report_dir/*/run.json. When several match (the same run repeated), the one whose
    summary.json was written last wins.
    """
    if not report_dir.is_dir():
        return None
    best: tuple[int, str] | None = None
    found: Path | None = None
    for run_json in report_dir.glob("*/run.json"):
        run_dir = run_json.parent
        if run_key_of(run_dir) != key or finished_summary(run_dir) is None:
            continue
        try:
            rank = ((run_dir / "summary.json").stat().st_mtime_ns, run_dir.name)
        except OSError:
            continue
        if best is None or rank > best:
            best, found = rank, run_dir
    return found


def peak_memory_bytes(summary: Mapping[str, Any]) -> int | None:
    """The highest peak memory of any component in a run summary, or None if none was recorded."""
    peaks = [c.get("peak_memory_bytes") for c in (summary.get("components") or {}).values()
             if isinstance(c, Mapping)]
    values = [int(p) for p in peaks if isinstance(p, (int, float)) and not isinstance(p, bool)]
    return max(values) if values else None


def component_total(summary: Mapping[str, Any], field_name: str) -> int | None:
    """A per-component count (restarts, oom_kills) summed over the components, or None."""
    values = [c.get(field_name) for c in (summary.get("components") or {}).values() if isinstance(c, Mapping)]
    numbers = [int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(numbers) if numbers else None


def crash_line(summary: Mapping[str, Any]) -> str | None:
    """The first crash signature of a run ("standalone: assertion ... in segcore InsertRecord
    (InsertRecord.h:330), ..."), None when no dead component's log named why it died."""
    crashes = summary.get("crashes")
    first = crashes[0] if isinstance(crashes, list) and crashes and isinstance(crashes[0], Mapping) else None
    return f"{first.get('component')}: {first.get('line')}" if first else None


def memory_limit_bytes(summary: Mapping[str, Any]) -> int | None:
    """The largest memory limit of any component in a run summary, or None if none was set."""
    values = [c.get("limit_bytes") for c in (summary.get("components") or {}).values() if isinstance(c, Mapping)]
    numbers = [int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v]
    return max(numbers) if numbers else None
