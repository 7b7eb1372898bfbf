"""The Locust side of one process's load: its settings per test, the central ledger, and how
users reach it (LoadPort) in the local runner, on the master and on a worker.

Imported only inside Locust processes (gevent is patched first). One CentralLoad per process,
on `environment.harness_load`:

- the local runner or the master makes the test's Ledger at test_start (and the collection
  with --collection-mode create), and alone writes acks.jsonl;
- a worker's users lease batches and report every attempt through Locust's custom messages
  (harness_lease -> harness_batch, harness_report); the master answers from the ledger;
- the master watches its workers: one that Locust sees missing or gone while holding leases
  has them taken back (Ledger.lost), so another worker re-sends those batches.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
from typing import Any, Callable, Protocol

import gevent
from gevent.event import AsyncResult
from locust import events, stats
from locust.env import Environment
from locust.runners import STATE_MISSING, WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from harness.errors import HarnessError, UsageError
from harness.load import collection
from harness.load.dispenser import Dispenser
from harness.load.ledger import LOCAL, Ledger
from harness.load import locust_options
from harness.load.locust_options import CREATE, LoadSettings
from harness.rundir import JsonlWriter

log = logging.getLogger(__name__)

LEASE, BATCH, REPORT = "harness_lease", "harness_batch", "harness_report"
#: How often the master looks for workers that went missing holding leases.
WATCH_WORKERS_S = 0.5
#: How long a worker's user waits for the master to answer a lease.
LEASE_TIMEOUT_S = 60.0


class LoadPort(Protocol):
    """How a user gets batch numbers and reports what it did with them."""

    def lease(self) -> int | None:
        """A batch number, dispenser.WAIT (ask again shortly) or None (no batch left)."""

    def report(self, k: int, record: dict[str, Any] | None, retry: bool) -> None:
        """Batch k is done: `record` is the insert attempt (None: never sent); `retry` returns it."""


class LocalPort:
    """The ledger in this process (the local runner, or the master's own)."""

    def __init__(self, central: "CentralLoad") -> None:
        self.central = central

    def lease(self) -> int | None:
        ledger = self.central.ledger
        return ledger.lease(LOCAL) if ledger is not None else None

    def report(self, k: int, record: dict[str, Any] | None, retry: bool) -> None:
        if self.central.ledger is not None:
            self.central.ledger.report(LOCAL, k, record, retry)


class WorkerPort:
    """The master's ledger, over Locust's custom messages."""

    _requests = itertools.count()

    def __init__(self, runner: WorkerRunner, pending: dict[str, AsyncResult]) -> None:
        self.runner = runner
        self.pending = pending

    def lease(self) -> int | None:
        req = f"{os.getpid()}-{next(self._requests)}"
        answer: AsyncResult = AsyncResult()
        self.pending[req] = answer
        self.runner.send_message(LEASE, {"req": req})
        try:
            return answer.get(timeout=LEASE_TIMEOUT_S)
        finally:
            self.pending.pop(req, None)

    def report(self, k: int, record: dict[str, Any] | None, retry: bool) -> None:
        self.runner.send_message(REPORT, {"k": k, "record": record, "retry": retry})


class CentralLoad:
    """This process's part of the load; install() makes it and hooks it into Locust."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.settings: LoadSettings | None = None
        #: Settings for the next test given by a program embedding Locust (`milvus-harness ui`),
        #: instead of the ones the options make.
        self.next_settings: LoadSettings | None = None
        self.ledger: Ledger | None = None
        #: Called once every batch of the test has settled; by default the test stops
        #: (headless: Locust quits).
        self.on_drained: list[Callable[[], None]] = []
        #: Whether the web UI's start form makes the settings (checked before a test starts);
        #: False when an embedding program gives them (next_settings).
        self.options_from_form = True
        self._pending: dict[str, AsyncResult] = {}
        runner = environment.runner
        self.port: LoadPort = (WorkerPort(runner, self._pending) if isinstance(runner, WorkerRunner)
                               else LocalPort(self))

    @property
    def is_central(self) -> bool:
        return not isinstance(self.environment.runner, WorkerRunner)

    # -- each test -----------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_kw: Any) -> None:
        settings, self.next_settings = self.next_settings, None
        if self.ledger is not None:  # the last test's
            self.ledger.close()
            self.ledger = None
        try:
            self.settings = settings or LoadSettings.from_options(environment.parsed_options, environment.host,
                                                                  os.environ)
        except HarnessError as exc:
            self.settings = None
            self._refuse(str(exc), exit_code=2 if isinstance(exc, UsageError) else 1)
            return
        if self.is_central:
            self._open_ledger(self.settings)

    def _open_ledger(self, settings: LoadSettings) -> None:
        try:
            if settings.collection_mode == CREATE:
                collection.create(settings.connection, settings.scenario)
            else:
                collection.require(settings.connection, settings.scenario)
        except HarnessError as exc:
            self._refuse(str(exc), exit_code=2 if isinstance(exc, UsageError) else 1)
            return
        except Exception as exc:  # pymilvus and grpc errors: the server did not answer
            self._refuse(f"cannot reach Milvus at {settings.connection.uri}: {str(exc).splitlines()[0][:300]}")
            return
        if settings.collection_mode == CREATE:
            settings.acks.unlink(missing_ok=True)  # the acks of a collection just dropped describe nothing
        settings.acks.parent.mkdir(parents=True, exist_ok=True)
        dispenser = Dispenser(settings.scenario.batches, self._drained, pause=settings.pause, down=settings.down)
        self.ledger = Ledger(settings.scenario, dispenser, JsonlWriter(settings.acks))
        log.info("test start: %s batches of %s rows into %s at %s; acks in %s", settings.scenario.batches,
                 settings.scenario.batch_rows, settings.scenario.collection, settings.connection.address,
                 settings.acks)

    def _refuse(self, message: str, exit_code: int = 1) -> None:
        """The test cannot run: say why once, lease nothing, stop (headless: quit with `exit_code`:
        2 for bad input such as refused credentials, as for a bad option; else 1, Locust's failure)."""
        log.error("milvus-harness: %s", message)
        if self.is_central and self.environment.runner is not None:
            if self._headless:
                self.environment.process_exit_code = int(exit_code)
            gevent.spawn_later(0.1, self._stop_or_quit)

    def _drained(self) -> None:
        log.info("every batch settled; stopping the load")
        for listener in self.on_drained:
            listener()
        gevent.spawn_later(self._last_stats_delay(), self._stop_or_quit)

    def _last_stats_delay(self) -> float:
        """Headless, Locust writes --csv's stats file only once a CSV interval and not again at
        exit (and a worker reports its stats once a WORKER_REPORT_INTERVAL): quitting at once
        would leave the last inserts out of it. The web UI's test only stops."""
        if not self._headless:
            return 0.1
        return (stats.CSV_STATS_INTERVAL_SEC + 0.5
                + (WORKER_REPORT_INTERVAL if isinstance(self.environment.runner, MasterRunner) else 0.0))

    @property
    def _headless(self) -> bool:
        options = self.environment.parsed_options
        return bool(options is not None and options.headless)

    def _stop_or_quit(self) -> None:
        runner = self.environment.runner
        assert runner is not None
        if self._headless:
            runner.quit()
        else:
            runner.stop()

    def close(self, **_kw: Any) -> None:
        if self.ledger is not None:
            self.ledger.close()

    # -- the master's side of the messages ---------------------------------------------------

    def on_lease(self, msg: Any, **_kw: Any) -> None:
        k = self.ledger.lease(msg.node_id) if self.ledger is not None else None
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        runner.send_message(BATCH, {"req": msg.data["req"], "k": k}, client_id=msg.node_id)

    def on_report(self, msg: Any, **_kw: Any) -> None:
        if self.ledger is not None:
            data = msg.data
            if not self.ledger.report(msg.node_id, data["k"], data["record"], data["retry"]):
                log.warning("batch %s reported by %s, whose lease was taken back: recorded as stale",
                            data["k"], msg.node_id)

    def watch_workers(self) -> None:
        """Take back the leases of workers that Locust sees missing or no longer knows."""
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        while True:
            gevent.sleep(WATCH_WORKERS_S)
            ledger = self.ledger
            if ledger is None:
                continue
            for owner in ledger.holders() - {LOCAL}:
                node = runner.clients.get(owner)
                if node is None or node.state == STATE_MISSING:
                    why = f"worker {owner} {'went missing' if node is not None else 'is gone'}"
                    taken = ledger.lost(owner, why)
                    log.warning("%s holding batches %s: they go back to the pool", why, taken)

    # -- a worker's side -----------------------------------------------------------------------

    def on_batch(self, msg: Any, **_kw: Any) -> None:
        answer = self._pending.get(msg.data["req"])
        if answer is not None:
            answer.set(msg.data["k"])


def install(environment: Environment) -> CentralLoad:
    """Make this process's CentralLoad and register its listeners and messages (once per process)."""
    central = CentralLoad(environment)
    environment.harness_load = central  # type: ignore[attr-defined]
    runner = environment.runner
    environment.events.test_start.add_listener(central.on_test_start)
    environment.events.quitting.add_listener(central.close)
    if isinstance(runner, WorkerRunner):
        runner.register_message(BATCH, central.on_batch)
    elif isinstance(runner, MasterRunner):
        runner.register_message(LEASE, central.on_lease)
        runner.register_message(REPORT, central.on_report)
        gevent.spawn(central.watch_workers)
    return central


def central_of(environment: Environment) -> CentralLoad:
    """The CentralLoad install() put on the environment."""
    return environment.harness_load  # type: ignore[attr-defined,no-any-return]


@events.init_command_line_parser.add_listener
def _arguments(parser: Any, **_kw: Any) -> None:
    locust_options.add_arguments(parser)


@events.init.add_listener
def _init(environment: Environment, **_kw: Any) -> None:
    options = environment.parsed_options
    if options is not None:
        _check_command_line(environment, options)
    install(environment)
    if environment.web_ui is not None:
        _check_start_form(environment)


def _check_command_line(environment: Environment, options: Any) -> None:
    """A bad option is one line and exit 2 before anything starts, as Locust's own are. The
    address is checked when it must be there already: headless, on the master or alone."""
    host = environment.host or options.host
    headless_central = options.headless and not isinstance(environment.runner, WorkerRunner)
    try:
        if host or headless_central:
            LoadSettings.from_options(options, host, os.environ)
        else:  # the web UI's form or the master gives it later
            LoadSettings.from_options(options, "127.0.0.1", os.environ)
    except HarnessError as exc:
        sys.stderr.write(f"locust: error: {exc}\n")
        raise SystemExit(2) from None


def _check_start_form(environment: Environment) -> None:
    """The start form's fields are checked like the command line's: a bad one is refused with
    its message, and no test starts."""
    from flask import jsonify, request
    from locust.runners import STATE_RUNNING, STATE_SPAWNING

    web_ui = environment.web_ui
    assert web_ui is not None
    central = central_of(environment)

    @web_ui.app.before_request
    def refuse_bad_options() -> Any:
        if request.method != "POST" or request.path.rstrip("/") != "/swarm" or not central.options_from_form:
            return None
        runner = environment.runner
        if runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
            return None  # "Edit running load test": only the users change
        given = argparse.Namespace(**vars(environment.parsed_options))
        for name in locust_options.FORM_OPTIONS:
            if name in request.form:
                setattr(given, name, request.form.get(name))
        host = request.form.get("host") or environment.host
        try:
            LoadSettings.from_options(given, host, os.environ)
        except HarnessError as exc:
            log.warning("start refused: %s", exc)
            return jsonify({"success": False, "message": str(exc), "host": environment.host})
        return None
