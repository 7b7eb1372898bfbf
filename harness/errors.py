"""The one error boundary of the harness and its exit-code table (docs/design.md, "Contracts")."""

from __future__ import annotations

import enum
import signal
from contextlib import contextmanager
from typing import Any, Iterator


class ExitCode(enum.IntEnum):
    """Exit codes of `run`, `matrix` and `bisect`; 125 is `git bisect run`'s "skip"."""

    PASS = 0
    FAIL = 1
    USAGE = 2
    INCONCLUSIVE = 125
    INTERRUPTED = 130  # SIGINT / Ctrl-C
    TERMINATED = 143  # SIGTERM


class HarnessError(Exception):
    """Something the user can fix: printed as one line, never with a traceback."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(HarnessError):
    """Bad input: what was wrong and what is allowed. Exit 2."""

    exit_code = ExitCode.USAGE


class TargetError(HarnessError):
    """The target could not be brought up or reached: the run cannot test anything. Exit 125."""

    exit_code = ExitCode.INCONCLUSIVE


class Interrupted(BaseException):
    """The harness was asked to stop (SIGTERM, or SIGINT outside Python's own handler).

    A BaseException, like KeyboardInterrupt, so that code which retries on `Exception`
    (readiness polls, pymilvus calls) cannot swallow it: the run unwinds, cleans up and
    reports ABORTED with exit 128 + signal.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises Interrupted, so every phase unwinds like Ctrl-C, cleans up and reports."""
    old = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
