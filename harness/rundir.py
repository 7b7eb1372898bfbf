"""The run directory (docs/design.md, "Contracts"): its file names, atomic JSON, flushed JSON lines."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.errors import UsageError
from harness.units import format_bytes

log = logging.getLogger(__name__)

#: Carried by every JSON file the harness writes; bump when a field changes meaning.
SCHEMA_VERSION = 2  # 2: time_to_verdict_s is when the verdict was decided; load_s, verify_s, memory_split, crashes added

#: Free space a report dir must have before a run starts: samples, acks, Milvus's logs and the
#: report of a long run take tens of MiB.
MIN_FREE_BYTES = 100 * 2**20


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file and os.replace, so readers never see half a file
    (the one atomic write of the harness: JSON, reports, pages, caches)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (write_text), with the schema version first."""
    data = {"schema_version": SCHEMA_VERSION, **data}
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the complete lines of a JSON-lines file; a torn last line (harness killed) is skipped."""
    if not path.exists():
        return
    with path.open() as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def new_run_id(report_dir: Path, scenario_name: str, version: str | None) -> str:
    """<time>-<scenario>-<version>, with a random suffix when two runs start within one second."""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario_name}-{version or 'unknown'}"
    while (report_dir / run_id).exists():
        run_id = f"{run_id}-{secrets.token_hex(2)}"
    return run_id


class JsonlWriter:
    """Appends one JSON object per line and flushes each, so nothing is lost if the harness dies.

    One write() per line on an O_APPEND descriptor: lines from several processes (Locust
    workers) interleave whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _check_free(report_dir: Path) -> None:
    free = shutil.disk_usage(report_dir).free
    if free < MIN_FREE_BYTES:
        raise UsageError(f"report dir {report_dir} has {format_bytes(free)} free; a run needs at least "
                         f"{format_bytes(MIN_FREE_BYTES)} for its samples, logs and report")


def new_numbered_dir(report_dir: Path, prefix: str, base: str) -> Path:
    """Make report_dir/<prefix><base>, or <prefix><base>-2, -3 ...: the first that is free.

    Matrix and bisect directories are named this way; an unwritable report dir is one line.
    """
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        _check_free(report_dir)
        for n in range(1, 1000):
            path = report_dir / f"{prefix}{base}{'' if n == 1 else f'-{n}'}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise UsageError(f"report dir {report_dir} is not writable: {exc.strerror or exc}") from None
    raise UsageError(f"report dir {report_dir} already holds {prefix}{base} and 998 more; pick another --id")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's files."""

    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def samples(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def acks(self) -> Path:
        """One line per insert attempt: batch, first/last primary key, rows, ok, t."""
        return self.path / "acks.jsonl"

    @property
    def ramp(self) -> Path:
        """The concurrency ramp's steps (runs without --users): one line per measured step."""
        return self.path / "ramp.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def profiles(self) -> Path:
        """Go heap profiles, <component>-<trigger>.pb.gz (harness.profiles.capture)."""
        return self.path / "profiles"

    @property
    def locust_prefix(self) -> Path:
        """Locust's --csv prefix: locust_stats.csv, locust_stats_history.csv, ..."""
        return self.path / "locust"

    @property
    def locust_html(self) -> Path:
        return self.path / "locust.html"

    def take_logs(self, source: Path) -> None:
        """Move the files of `source` (a stopped server's log dir) into logs/."""
        if not source.exists():
            return
        for item in source.iterdir():
            try:
                shutil.move(str(item), str(self.logs / item.name))
            except OSError as exc:
                log.warning("could not move %s: %s", item, exc)

    @classmethod
    def create(cls, report_dir: Path, run_id: str) -> "RunDir":
        """Make reports/<run-id>/; an unwritable or nearly full report dir fails here, before
        anything starts, and leaves nothing behind."""
        made: list[Path] = []
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            _check_free(report_dir)
            path = report_dir / run_id
            path.mkdir()
            made.append(path)
            (path / "logs").mkdir()
            probe = path / ".write-test"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as exc:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
            raise UsageError(f"report dir {report_dir} is not writable: {exc.strerror or exc}") from None
        return cls(path)
