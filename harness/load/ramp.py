"""Saturating load: the concurrency ramp of a run whose users are not pinned (no Locust import here).

The run starts with one user and adds one user per step while the acked rows/s of a step grows
by at least GROWTH over the step before; then it holds the step with the highest rows/s.
A step is measured on acks.jsonl, the same record the summary's rows/s comes from:

- only acks of batches sent after the step began count (sent at the step's concurrency);
- the first `users` of them warm the step up (one per user: the pipeline is full after them);
- the window then runs from the last warm-up ack until WINDOW_BATCHES more acks have arrived
  and at least WINDOW_MIN_S have passed; rows/s = rows acked in the window / its seconds.

A death or a held load during a step makes its rows/s fall, which ends the ramp on the best
step measured before it. Batch order and content do not depend on the ramp: the dispenser
hands out batches in order whatever the number of users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.rundir import JsonlWriter, read_jsonl
from harness.units import plural

#: A step must beat the one before it by this factor for the ramp to go on.
GROWTH = 1.10
#: Acks in a step's measuring window (after its warm-up), and its shortest duration.
WINDOW_BATCHES = 2
WINDOW_MIN_S = 2.0
#: The ramp never asks for more users than this (the scenario's limit for `users`).
MAX_USERS = 256
#: Users per second Locust starts or stops at a step change: at once, the step is what matters.
SPAWN_RATE = 100.0

RULE = (f"users 1, 2, 3, ... while a step's acked rows/s is at least {GROWTH:.2f} x the step before; "
        f"each step skips one batch per user, then measures {WINDOW_BATCHES} batches and at least "
        f"{WINDOW_MIN_S:g} s; the run holds the step with the highest rows/s")


def next_users(rates: list[float], growth: float = GROWTH, max_users: int = MAX_USERS) -> int | None:
    """The user count of the next step, given the rows/s of steps 1..n users; None once the ramp is over.

    The ramp goes on while each step grew by at least `growth` over the one before.
    """
    if not rates:
        return 1
    if len(rates) >= max_users:
        return None
    if len(rates) == 1 or rates[-1] >= growth * rates[-2]:
        return len(rates) + 1
    return None


def best_users(rates: list[float]) -> int:
    """The user count whose step had the highest rows/s (the fewer users on a tie)."""
    return max(range(len(rates)), key=lambda i: (rates[i], -i)) + 1


@dataclass
class Step:
    """One step of the ramp being measured: `users` since `began` (epoch seconds)."""

    users: int
    began: float
    warmup: int = 0
    window_start: float | None = None
    window_acks: int = 0
    window_rows: int = 0
    window_end: float = 0.0

    def add(self, ack: dict[str, Any]) -> None:
        """Count one ack (acks.jsonl record) if it belongs to this step."""
        if not ack.get("ok") or ack.get("t_start", 0.0) < self.began:
            return
        if self.warmup < self.users:
            self.warmup += 1
            if self.warmup == self.users:
                self.window_start = ack["t"]
            return
        self.window_acks += 1
        self.window_rows += ack["rows"]
        self.window_end = ack["t"]

    def rows_per_s(self) -> float | None:
        """The step's rows/s once its window is complete, else None."""
        if self.window_start is None or self.window_acks < WINDOW_BATCHES:
            return None
        seconds = self.window_end - self.window_start
        if seconds < WINDOW_MIN_S or seconds <= 0:
            return None
        return self.window_rows / seconds


@dataclass
class Ramp:
    """The ramp's state: feed it acks, ask it how many users to run now.

    `record` (ramp.jsonl) gets one line per measured step and one when the ramp settles.
    """

    record: JsonlWriter | None = None
    rates: list[float] = field(default_factory=list)
    step: Step | None = None
    chosen: int | None = None

    def users(self, now: float | None = None) -> int:
        """How many users should run now (starts the first step on the first call)."""
        if self.chosen is not None:
            return self.chosen
        if self.step is None:
            self.step = Step(users=1, began=time.time() if now is None else now)
        return self.step.users

    def add(self, acks: list[dict[str, Any]], now: float | None = None) -> None:
        """Take new acks; when they complete the current step, decide the next one."""
        if self.chosen is not None or self.step is None:
            return
        for ack in acks:
            self.step.add(ack)
        rate = self.step.rows_per_s()
        if rate is None:
            return
        self.rates.append(rate)
        self._write({"t": time.time(), "step": len(self.rates), "users": self.step.users,
                     "rows_per_s": round(rate, 1), "batches": self.step.window_acks,
                     "seconds": round(self.step.window_end - (self.step.window_start or 0.0), 3)})
        following = next_users(self.rates)
        if following is None:
            self.chosen = best_users(self.rates)
            self._write({"t": time.time(), "chosen_users": self.chosen, "rule": RULE})
        else:
            self.step = Step(users=following, began=time.time() if now is None else now)

    def _write(self, record: dict[str, Any]) -> None:
        if self.record is not None:
            self.record.write(record)


def read_record(path: Path) -> dict[str, Any]:
    """A run's ramp from its ramp.jsonl: the measured steps and the chosen users (None while still ramping)."""
    steps: list[dict[str, Any]] = []
    chosen: int | None = None
    for line in read_jsonl(path) if path.exists() else []:
        if "chosen_users" in line:
            chosen = line["chosen_users"]
        else:
            steps.append({k: line[k] for k in ("users", "rows_per_s", "batches", "seconds")})
    return {"steps": steps, "chosen_users": chosen}


def concurrency(path: Path, pinned: int | None) -> dict[str, Any]:
    """summary.json's `concurrency`: the pinned user count, or the ramp's steps and its choice.

    A ramp the load outran (every batch settled first) held no level: `users` is then the
    step it was measuring when the load ended, and `settled` is false.
    """
    if pinned is not None:
        return {"mode": "pinned", "users": pinned}
    record = read_record(path)
    rates = [s["rows_per_s"] for s in record["steps"]]
    settled = record["chosen_users"] is not None
    return {"mode": "ramp", "users": record["chosen_users"] if settled else next_users(rates),
            "settled": settled, "steps": record["steps"], "rule": RULE}


def describe(summary_concurrency: Any) -> str | None:
    """summary.json's `concurrency` in one line, for the console and the reports (None if absent)."""
    if not isinstance(summary_concurrency, dict):
        return None
    users = summary_concurrency.get("users")
    if summary_concurrency.get("mode") == "pinned":
        return f"{_users(users)} (pinned)"
    steps, previous, parts = summary_concurrency.get("steps") or [], None, []
    for step in steps:
        change = f" ({step['rows_per_s'] / previous - 1:+.0%})" if previous else ""
        parts.append(f"{_users(step['users'])} {step['rows_per_s']:,.0f} rows/s{change}")
        previous = step["rows_per_s"]
    measured = "; ".join(parts) or "no step measured"
    if summary_concurrency.get("settled"):
        return f"{_users(users)}, the ramp's best step: {measured}"
    return f"the load ended while the ramp measured {_users(users)}: {measured}"


def _users(n: int) -> str:
    return plural(n, "user")


def describe_setting(users: int | None) -> str:
    """What a matrix or bisect ran every cell with: one pinned user count, or each run's own ramp."""
    if users is None:
        return "ramped in each run (--users N pins one count for all)"
    return f"{_users(users)}, pinned for every run"
