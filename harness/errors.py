"""The one error boundary of the harness and its exit-code table (DESIGN.md, "Contracts")."""

from __future__ import annotations

import enum


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


class Interrupted(HarnessError):
    """The harness was asked to stop (Ctrl-C or SIGTERM) and cleaned up."""

    def __init__(self, signum: int) -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}", 128 + signum)
        self.signum = signum
