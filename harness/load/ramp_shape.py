"""The ramp as a Locust LoadTestShape: Locust's own way to change the user count while a test runs.

Only the locustfile of unpinned runs (locustfiles/insert_ramp.py) holds it; with `--users N`
the run uses locustfiles/insert.py and Locust's plain -u N. The shape runs where the users are
counted (the local runner or the master) and reads acks.jsonl, which every user appends to.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

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
        if self.ramp is None:
            config = environment.harness_config
            self.acks = JsonlTail(config.acks)
            self.ramp = Ramp(record=JsonlWriter(config.ramp) if config.ramp else None)
        assert self.acks is not None
        self.ramp.add(self.acks.poll())
        return self.ramp.users(), SPAWN_RATE
