"""Reading a run's JSON-lines files while they grow: the one tail that `run` and `ui` share.

Locust appends acks.jsonl and the recorder appends samples.jsonl and events.jsonl; readers
poll them from the last complete line on, so a line being written is read on the next poll.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


class AckTally:
    """Running totals of acks.jsonl: rows acked, inserts failed, and rows acked over time."""

    def __init__(self, path: Path) -> None:
        self._tail = JsonlTail(path)
        self.acked_rows = 0
        self.failed = 0
        #: failed inserts sent while no server accepted writes (counted apart: expected, not a finding)
        self.failed_while_down = 0
        #: [t, rows acked so far] per acked batch (small: one point per batch)
        self.series: list[list[float]] = []

    @property
    def settled(self) -> int:
        """Insert attempts settled so far, acked or failed (the stall detector's progress)."""
        return len(self.series) + self.failed

    def poll(self) -> None:
        for ack in sorted(self._tail.poll(), key=lambda a: a["t"]):
            if ack.get("stale"):  # a batch whose lease was taken back: its rows count once, from its holder
                continue
            if ack["ok"]:
                self.acked_rows += ack["rows"]
                self.series.append([ack["t"], self.acked_rows])
            else:
                self.failed += 1
                self.failed_while_down += bool(ack.get("server_down"))
