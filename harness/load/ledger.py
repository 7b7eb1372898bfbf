"""The central side of the load: who holds which batch, and the one acks.jsonl (no Locust import).

Locust's local runner, or its master, owns one Ledger per test. Every user (in this process or
on a worker) leases batch numbers from it and reports each insert attempt back to it, and it
alone appends to acks.jsonl, so the run's acks are complete and in one order whatever the
number of processes. A lease belongs to an owner (a worker's client id, or this process); when
an owner is lost (its process died, or quit holding leases) its unsettled batches go back to
the pool with a record saying so, and are re-sent by someone else. A report from an owner
that no longer holds the batch (it came back after its leases were given away) is written
as a stale record that settles nothing: an acked batch is never handed out again.
"""

from __future__ import annotations

import time
from typing import Any

from harness.load.batches import primary_keys
from harness.load.dispenser import WAIT, Dispenser
from harness.rundir import JsonlWriter
from harness.scenario.model import Scenario

#: The owner name of the users in the ledger's own process.
LOCAL = "local"


class Ledger:
    """Batch leases by owner over one Dispenser, and the acks.jsonl they are reported into."""

    def __init__(self, scenario: Scenario, dispenser: Dispenser, acks: JsonlWriter) -> None:
        self.scenario = scenario
        self.dispenser = dispenser
        self.acks = acks
        self._holder: dict[int, str] = {}

    def lease(self, owner: str) -> int | None:
        """The next batch for `owner`: a batch number, WAIT (ask again shortly) or None (none left)."""
        k = self.dispenser.lease()
        if k is not None and k != WAIT:
            self._holder[k] = owner
        return k

    def report(self, owner: str, k: int, record: dict[str, Any] | None, retry: bool) -> bool:
        """`owner` is done with batch k: `record` (an insert attempt) goes into acks.jsonl, and
        the batch is settled (with `retry`, back to the pool). None means never sent. False
        when k was not `owner`'s any more: the record is kept, marked stale, and settles nothing."""
        if self._holder.get(k) != owner:
            if record is not None:
                self.acks.write({**record, "stale": True})
            return False
        del self._holder[k]
        if record is not None:
            self.acks.write(record)
        self.dispenser.settle(k, retry=retry)
        return True

    def holders(self) -> set[str]:
        """The owners that hold a batch now."""
        return set(self._holder.values())

    def lost(self, owner: str, why: str) -> list[int]:
        """`owner` is gone: each batch it held goes back to the pool, recorded as a failed attempt
        (it may have been in flight, so the check after the load counts it one by one)."""
        taken = sorted(k for k, holder in self._holder.items() if holder == owner)
        now = time.time()
        for k in taken:
            first, last = primary_keys(self.scenario, k)
            self.report(owner, k, {"t": now, "batch": k, "first_pk": first, "last_pk": last,
                                   "rows": last - first + 1, "ok": False, "retry": True, "worker": owner,
                                   "lease_lost": True, "error": f"lease lost: {why}"}, retry=True)
        return taken

    def close(self) -> None:
        self.acks.close()
