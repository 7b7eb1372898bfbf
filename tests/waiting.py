"""Waiting on a condition in tests: event-driven checks instead of fixed sleeps."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(check: Callable[[], object], timeout: float = 180, what: str = "the condition") -> None:
    """Poll `check` every 50 ms until it is true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout:.0f} s: {what}")
