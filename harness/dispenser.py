"""Batch numbers, handed out once each across all users and workers (no Locust import here)."""

from __future__ import annotations

from typing import Any


class Dispenser:
    """Hands out batch numbers 0..batches-1 once each, and knows when all are settled."""

    def __init__(self, batches: int, on_drained: Any) -> None:
        self.batches = batches
        self._next = 0
        self._leased: set[int] = set()
        self._returned: list[int] = []
        self._on_drained = on_drained
        self._drained = False

    def lease(self) -> int | None:
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
