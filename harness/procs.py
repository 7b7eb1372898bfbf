"""The one helper for subprocesses the harness runs to completion (pip, kind, helm, kubectl).

Output is captured; the command and the tail of its output are shown only when it fails
(as a HarnessError) or with -v (logged at debug level).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

from harness.errors import ExitCode, HarnessError, TargetError

_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger(__name__)

_TAIL_LINES = 20


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])


def run_command(argv: Sequence[str], *, what: str, timeout: float | None = None,
                env: Mapping[str, str] | None = None, check: bool = True,
                input: str | None = None, exit_code: int = ExitCode.INCONCLUSIVE) -> subprocess.CompletedProcess[str]:
    """Run argv, capture its output, and raise a HarnessError naming `what` if it fails.

    `exit_code` is the harness exit code of that error: 125 (could not test) by default,
    2 where a failure means the user's input was wrong.
    """
    command = shlex.join(str(a) for a in argv)
    log.debug("running: %s", command)
    try:
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                                timeout=timeout, env=dict(env) if env is not None else None,
                                input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise HarnessError(f"cannot {what}: {argv[0]} is not installed or not on PATH", exit_code) from None
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
        raise HarnessError(f"cannot {what}: `{command}` did not finish within {timeout:.0f} s"
                           + (f"\n{_tail(output)}" if output else ""), exit_code) from None
    log.debug("%s\n%s%s", command, result.stdout, result.stderr)
    if check and result.returncode != 0:
        raise HarnessError(
            f"cannot {what}: `{command}` exited with {result.returncode}\n{_tail(result.stdout + result.stderr)}",
            exit_code)
    return result


def require_tool(name: str, how_to_install: str) -> str:
    """The path of an executable, or a one-line UsageError saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise TargetError(f"{name} is not installed; {how_to_install}", ExitCode.USAGE)
    return path


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while a resource is made and recorded as one step.

    An interrupt between, say, Popen returning and `self.proc = ...` would leave a server
    nobody stops. Inside the block the signal is only noted; the handler that was in place
    runs when the block ends. Python runs signal handlers on the main thread only, so other
    threads need no deferral.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: pending.append(signum)) for s in _INTERRUPTS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), pending[0])


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Until no process of process group `pgid` is left (True), or `timeout` passed (False).

    Signal 0 to the group asks the kernel whether any member exists, so this waits for an
    event (the last member's exit), not for a guessed time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # a member that is no longer ours (the pgid was reused)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
