"""The ramp as a Locust LoadTestShape: Locust's own way to change the user count while a test runs.

Only the ramp's locustfile (harness/locustfiles/ramp.py, loaded next to milvus_insert.py by
runs without --users) holds it; with `--users N` the run uses Locust's plain -u N. The shape
runs where the users are counted (the local runner or the master), which also writes acks.jsonl.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from harness.load.central import central_of
from harness.load.ramp import SPAWN_RATE, Ramp
from harness.rundir import JsonlWriter
from harness.run.jsonl_tail import JsonlTail


class RampShape(LoadTestShape):
    """Ticks once a second: the ramp's user count, or None once --run-time is over."""

    #: It honours --run-time itself (Locust ignores it with a shape otherwise).
    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.ramp: Ramp | None = None
        self.acks: JsonlTail | None = None

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        environment: Any = self.runner.environment
        run_time = environment.parsed_options.run_time if environment.parsed_options else None
        if run_time and self.get_run_time() >= run_time:
            return None
        settings = central_of(environment).settings
        if settings is None:  # the first tick comes before test_start: the ramp's first step
            return 1, SPAWN_RATE
        if self.ramp is None:
            self.acks = JsonlTail(settings.acks)
            self.ramp = Ramp(record=JsonlWriter(settings.ramp) if settings.ramp else None)
        assert self.acks is not None
        self.ramp.add(self.acks.poll())
        return self.ramp.users(), SPAWN_RATE
