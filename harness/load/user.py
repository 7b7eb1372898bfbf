"""The Locust side of a run: the User that inserts batches, and how it gets batch numbers from the dispenser.

Imported only inside Locust processes (gevent is patched before this module loads). The
harness process writes load.json into the run directory; Locust is told its path with
--harness-config. Batch numbers come from one dispenser: in the local runner it is an object
on the environment, in distributed mode it lives on the master and workers lease batches
through Locust's custom messages, so across all users and workers no batch is inserted
twice and none is skipped. Every attempt is appended to acks.jsonl as it happens.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import User, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.user.task import LOCUST_STATE_STOPPING

from harness.load import batches
from harness.milvus_client import Connection, Credentials
from harness.scenario import model as scenarios
from harness.load.insert import Inserter, make_inserter
from harness.load.dispenser import WAIT, Dispenser, LoadPause, ServerDown
from harness.rundir import JsonlWriter

log = logging.getLogger(__name__)

#: An insert that never reached the server (connection refused while it restarts) keeps its
#: batch and is tried again after this pause; any other failure consumes the batch, because
#: the server may have applied it.
RETRY_PAUSE_S = 1.0
_UNREACHED = ("UNAVAILABLE",)
#: How often a paused user asks whether the load may go on.
PAUSED_POLL_S = 0.25


class LoadConfig:
    """What the harness process told this Locust process (load.json)."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text())
        self.address: str = raw["address"]
        # The secrets come through this process's environment (locust_procs.locust_env), the rest from the file.
        self.connection = Connection(self.address, Credentials.from_parts(raw.get("credentials") or {}, os.environ))
        self.scenario = scenarios.from_mapping(raw["scenario"], default_name=raw["scenario"]["name"])
        self.acks = Path(raw["acks"])
        # Absent in web UI runs: they never pause.
        self.pause = LoadPause(Path(raw["pause"]), Path(raw["idle"])) if raw.get("pause") else None
        self.down = ServerDown(Path(raw["down"])) if raw.get("down") else None
        #: Where the ramp records its steps; absent when the users are pinned.
        self.ramp = Path(raw["ramp"]) if raw.get("ramp") else None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--harness-config", default="", help="load.json written by milvus-harness",
                        include_in_web_ui=False)


def install(environment: Environment) -> None:
    """Register the batch-lease messages between master and workers (once per process).

    The master's handlers look the dispenser up on the environment at each message, so the
    web UI can give every run its own (see use_config).
    """
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        environment.harness_leases = {}  # type: ignore[attr-defined]

        def on_batch(msg: Any, **_: Any) -> None:
            pending = environment.harness_leases.pop(msg.data["req"], None)  # type: ignore[attr-defined]
            if pending is not None:
                pending.set(msg.data["k"])

        runner.register_message("harness_batch", on_batch)
    elif isinstance(runner, MasterRunner):
        def on_lease(msg: Any, **_: Any) -> None:
            dispenser: Dispenser = environment.harness_dispenser  # type: ignore[attr-defined]
            runner.send_message("harness_batch", {"req": msg.data["req"], "k": dispenser.lease()},
                                client_id=msg.node_id)

        def on_settle(msg: Any, **_: Any) -> None:
            environment.harness_dispenser.settle(msg.data["k"], retry=msg.data["retry"])  # type: ignore[attr-defined]

        runner.register_message("harness_lease", on_lease)
        runner.register_message("harness_settle", on_settle)


def use_config(environment: Environment, config: LoadConfig, on_drained: Any) -> None:
    """Point this process's users at one run's load.json; the local runner or master also gets
    a fresh dispenser, which calls `on_drained` once every batch has settled."""
    environment.harness_config = config  # type: ignore[attr-defined]
    if not isinstance(environment.runner, WorkerRunner):
        environment.harness_dispenser = Dispenser(config.scenario.batches, on_drained,  # type: ignore[attr-defined]
                                                  pause=config.pause, down=config.down)


@events.init.add_listener
def _init(environment: Environment, **_kw: Any) -> None:
    opts = environment.parsed_options
    if opts is None or not opts.harness_config:
        return
    runner = environment.runner

    def drained() -> None:
        log.info("every batch settled; stopping the load")
        gevent.spawn_later(0.1, runner.quit)  # type: ignore[union-attr]

    install(environment)
    use_config(environment, LoadConfig(Path(opts.harness_config)), drained)


_requests = itertools.count()


class MilvusInsertUser(User):
    """Inserts the scenario's batches, one request per batch, until the dispenser runs dry."""

    def wait_time(self) -> float:
        return self.scenario.wait_s

    def on_start(self) -> None:
        config: LoadConfig = self.environment.harness_config  # type: ignore[attr-defined]
        self.config = config
        self.scenario = config.scenario
        # Channels are made here, after Locust forked its workers, never at import.
        self.inserter: Inserter = make_inserter(self.scenario.insert_path, config.connection,
                                                self.scenario.collection, self.scenario)
        self.acks = JsonlWriter(config.acks)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        #: The batch leased and being built for the next insert: (k, its pending preparation).
        self._next: tuple[int, Any] | None = None

    def on_stop(self) -> None:
        if self._next is not None:  # leased but never sent: back to the front for another user
            self._settle(self._next[0], retry=True)
            self._next = None
        self.inserter.close()
        self.acks.close()

    def _lease(self) -> int | None:
        env = self.environment
        if isinstance(env.runner, WorkerRunner):
            req = f"{os.getpid()}-{next(_requests)}"
            pending: AsyncResult = AsyncResult()
            env.harness_leases[req] = pending  # type: ignore[attr-defined]
            env.runner.send_message("harness_lease", {"req": req})
            return pending.get(timeout=60)
        return env.harness_dispenser.lease()  # type: ignore[attr-defined]

    def _settle(self, k: int, retry: bool) -> None:
        env = self.environment
        if isinstance(env.runner, WorkerRunner):
            env.runner.send_message("harness_settle", {"k": k, "retry": retry})
        else:
            env.harness_dispenser.settle(k, retry=retry)  # type: ignore[attr-defined]

    def _prepare(self, k: int) -> tuple[batches.Batch, Any]:
        batch = batches.generate_batch(self.scenario, k)
        return batch, self.inserter.prepare(batch)

    def _wait_for_server(self) -> bool:
        """Hold the batch in hand while the server is down, instead of failing it on a dead port;
        False when the load is being stopped meanwhile (a crash loop stops it that way)."""
        down = self.config.down
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
            k = self._lease()
            if k is None:
                raise StopUser()
            if k == WAIT:  # the harness is counting rows after a restart
                gevent.sleep(PAUSED_POLL_S)
                return
            batch, prepared = self._prepare(k)
        # Lease the next batch and build it on a real thread while this one is in flight, so the
        # server does not wait on generation and encoding (about 0.2 s of a 1.5 s insert).
        following = self._lease()
        if following is not None and following != WAIT:
            self._next = (following, gevent.get_hub().threadpool.spawn(self._prepare, following))
        if not self._wait_for_server():
            self._settle(k, retry=True)  # never sent
            raise StopUser()
        t_start = time.time()
        result = self.inserter.send(prepared, batch.rows)
        retry = not result.ok and (result.error or "").startswith(_UNREACHED)
        # Failed while the harness knew the server was down: counted apart from live failures.
        down = not result.ok and self.config.down is not None and self.config.down.is_down()
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
        self.acks.write(record)
        self._settle(k, retry)
        if retry:
            gevent.sleep(RETRY_PAUSE_S)
