"""The Locust User that inserts the scenario's batches, one request per batch.

Imported only inside Locust processes (gevent is patched before this module loads). The
settings of the test and the way to the batch ledger come from this process's CentralLoad
(harness.load.central): in the local runner the ledger is in this process, on a worker it
is the master's, reached through Locust's custom messages. Every attempt is reported there,
and the ledger alone writes acks.jsonl.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import gevent
from locust import User, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING

from harness.load import batches
from harness.load.central import central_of
from harness.load.dispenser import WAIT
from harness.load.insert import Inserter, make_inserter

#: An insert that never reached the server (connection refused while it restarts) keeps its
#: batch and is tried again after this pause; any other failure consumes the batch, because
#: the server may have applied it.
RETRY_PAUSE_S = 1.0
_UNREACHED = ("UNAVAILABLE",)
#: How often a paused user asks whether the load may go on.
PAUSED_POLL_S = 0.25


class MilvusInsertUser(User):
    """Inserts the scenario's batches, one request per batch, until the dispenser runs dry."""

    def wait_time(self) -> float:
        return self.scenario.wait_s

    def on_start(self) -> None:
        central = central_of(self.environment)
        if central.settings is None:  # the test was refused (logged once by CentralLoad)
            raise StopUser()
        self.settings = central.settings
        self.scenario = self.settings.scenario
        self.port = central.port
        # Channels are made here, after Locust forked its workers, never at import.
        self.inserter: Inserter = make_inserter(self.scenario.insert_path, self.settings.connection,
                                                self.scenario.collection, self.scenario)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        #: The batch leased and being built for the next insert: (k, its pending preparation).
        self._next: tuple[int, Any] | None = None

    def on_stop(self) -> None:
        if getattr(self, "inserter", None) is None:
            return  # on_start stopped it
        if self._next is not None:  # leased but never sent: back to the front for another user
            self.port.report(self._next[0], None, retry=True)
            self._next = None
        self.inserter.close()

    def _prepare(self, k: int) -> tuple[batches.Batch, Any]:
        batch = batches.generate_batch(self.scenario, k)
        return batch, self.inserter.prepare(batch)

    def _wait_for_server(self) -> bool:
        """Hold the batch in hand while the server is down, instead of failing it on a dead port;
        False when the load is being stopped meanwhile (a crash loop stops it that way)."""
        down = self.settings.down
        while down is not None and down.is_down():
            if self._state == LOCUST_STATE_STOPPING:
                return False
            gevent.sleep(PAUSED_POLL_S)
        return True

    @task
    def insert_batch(self) -> None:
        if self._next is not None:
            k, pending = self._next
            batch, prepared = pending.get()
            self._next = None  # only now: if the user is stopped while waiting, on_stop returns k
        else:
            k = self.port.lease()
            if k is None:
                raise StopUser()
            if k == WAIT:  # the harness is counting rows after a restart
                gevent.sleep(PAUSED_POLL_S)
                return
            batch, prepared = self._prepare(k)
        # Lease the next batch and build it on a real thread while this one is in flight, so the
        # server does not wait on generation and encoding (about 0.2 s of a 1.5 s insert).
        following = self.port.lease()
        if following is not None and following != WAIT:
            self._next = (following, gevent.get_hub().threadpool.spawn(self._prepare, following))
        if not self._wait_for_server():
            self.port.report(k, None, retry=True)  # never sent
            raise StopUser()
        t_start = time.time()
        result = self.inserter.send(prepared, batch.rows)
        retry = not result.ok and (result.error or "").startswith(_UNREACHED)
        # Failed while the harness knew the server was down: counted apart from live failures.
        down = not result.ok and self.settings.down is not None and self.settings.down.is_down()
        self.environment.events.request.fire(
            request_type="milvus", name=f"insert {self.scenario.batch_rows} rows",
            response_time=result.seconds * 1000, response_length=batch.rows if result.ok else 0,
            exception=None if result.ok else RuntimeError(result.error), context={"batch": k},
        )
        record = {"t": time.time(), "t_start": t_start, "batch": k, "first_pk": batch.first_pk,
                  "last_pk": batch.last_pk, "rows": batch.rows, "ok": result.ok,
                  "latency_ms": round(result.seconds * 1000, 2), "worker": self.worker}
        if not result.ok:
            record["error"] = result.error
            record["retry"] = retry
            if down:
                record["server_down"] = True
        self.port.report(k, record, retry)
        if retry:
            gevent.sleep(RETRY_PAUSE_S)
