"""Batch numbers, handed out once each across all users and workers, and the pause the
harness asks for while it counts rows after a restart (no Locust import here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: What lease() returns while the load is paused: wait and ask again.
WAIT = -1


class LoadPause:
    """A pause of the load, asked for by the harness process and honoured by the dispenser.

    Two files in the run directory carry it across processes: the harness creates `requested`,
    the dispenser (Locust's local runner or master) touches `idle` once no batch is in flight,
    and the harness removes both to resume.
    """

    def __init__(self, requested: Path, idle: Path) -> None:
        self.requested_path = requested
        self.idle_path = idle

    @classmethod
    def in_dir(cls, path: Path) -> "LoadPause":
        return cls(path / "load.pause", path / "load.idle")

    def to_json(self) -> dict[str, str]:
        return {"pause": str(self.requested_path), "idle": str(self.idle_path)}

    # --- the harness's side ---
    def request(self) -> None:
        self.requested_path.touch()

    def wait_idle(self, timeout: float, alive: Any = lambda: True) -> bool:
        """True once no insert is in flight; False after `timeout` or when `alive()` turns false."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.idle_path.exists():
                return True
            time.sleep(0.1)
        return False

    def release(self) -> None:
        self.requested_path.unlink(missing_ok=True)
        self.idle_path.unlink(missing_ok=True)

    # --- the dispenser's side ---
    def requested(self) -> bool:
        return self.requested_path.exists()

    def report_idle(self) -> None:
        self.idle_path.touch()


class ServerDown:
    """The server is down (dead or recovering): set by the harness process from a death to the
    next Ready, read by the Locust users, who hold their next insert until it clears.

    One file in the run directory; its text says which restart is awaited.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_dir(cls, path: Path) -> "ServerDown":
        return cls(path / "server.down")

    def to_json(self) -> dict[str, str]:
        return {"down": str(self.path)}

    def mark(self, note: str) -> None:
        self.path.write_text(note)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_down(self) -> bool:
        return self.path.exists()


class Dispenser:
    """Hands out batch numbers 0..batches-1 once each, and knows when all are settled."""

    def __init__(self, batches: int, on_drained: Any, pause: LoadPause | None = None,
                 down: ServerDown | None = None) -> None:
        self.batches = batches
        self._next = 0
        self._leased: set[int] = set()
        self._returned: list[int] = []
        self._on_drained = on_drained
        self._drained = False
        self._pause = pause
        self._down = down

    def lease(self) -> int | None:
        """The next batch, None when every batch is handed out, or WAIT while paused or while
        the server is down."""
        if self._pause is not None and self._pause.requested():
            if not self._leased:
                self._pause.report_idle()
            return WAIT
        if self._down is not None and self._down.is_down():
            return WAIT
        if self._returned:
            k = self._returned.pop(0)
        elif self._next < self.batches:
            k = self._next
            self._next += 1
        else:
            return None
        self._leased.add(k)
        return k

    def settle(self, k: int, retry: bool = False) -> None:
        """Batch k is done (acked or failed for good); with retry it goes back to the front."""
        self._leased.discard(k)
        if retry:
            self._returned.append(k)
            self._returned.sort()
        elif not self._leased and not self._returned and self._next >= self.batches and not self._drained:
            self._drained = True
            self._on_drained()
