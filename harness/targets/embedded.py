"""The embedded target: the real Milvus standalone server from PyPI, limited and supervised.

The server runs in a memory cgroup (or under the watchdog), on ports chosen free here and
confirmed by the server answering on them, in a data dir owned by the run. When it dies the
supervisor records why (OOMKilled when the cgroup's oom_kill count rose) and restarts it on
the same data dir after a kubelet-like back-off: 10 s, doubling, capped at 5 min. The server
process itself (config, ports, logs, process group) is targets/embedded_server.py.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import milvus_client
from harness.targets.cgroup import CgroupUnavailable, MemoryCgroup, Watchdog
from harness.errors import TargetError, UsageError
from harness.procs import interrupts_deferred
from harness.targets import install as installs
from harness.targets.embedded_server import EmbeddedServer, how_it_ended
from harness.targets.etcd_sessions import revoke_dead_sessions
from harness.targets.milvus_config import parse_config_overrides
from harness.targets.protocol import Endpoint, Target, TargetOptions, Watcher
from harness.watch import crash_log, events
from harness.watch.process import ProcessWatcher
from harness.watch.events import RunEvents

log = logging.getLogger(__name__)

COMPONENT = "standalone"
#: Harness defaults written into milvus.yaml, overridable with --milvus-config. A shorter
#: session TTL lets a restarted server take writes after ~10 s instead of ~30 s.
DEFAULT_CONFIG = {"common.session.ttl": "10"}
START_TIMEOUT = 180.0


class EmbeddedTarget(Target):
    """Target protocol over EmbeddedServer: install, limit, start, supervise, watch, stop."""

    kind = "embedded"

    def __init__(self, options: TargetOptions, log_dir: Path | None = None) -> None:
        if options.restart not in ("always", "never"):
            raise UsageError(f"--restart {options.restart!r}: allowed are always, never")
        self.options = options
        self.overrides = parse_config_overrides({**DEFAULT_CONFIG, **options.milvus_config})
        self.version = installs.resolve_version(options.milvus_version)
        self.log_dir = log_dir  # where the server logs go; the run sets its logs/ dir
        self._tmp: Path | None = None
        self.server: EmbeddedServer | None = None
        self.cgroup: MemoryCgroup | None = None
        self.watchdog: Watchdog | None = None
        self.context: RunEvents | None = None
        self.restarts = 0
        self.oom_kills = 0
        self.startup_seconds: float | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()  # cuts a restart back-off short
        self._ready = threading.Event()  # the live server took writes since it last started
        self._injected_death = False
        self._memory_pressure = False  # an oom@ fault is pressing the cgroup
        self._supervisor: threading.Thread | None = None
        self._watcher: ProcessWatcher | None = None
        self._lock = threading.Lock()
        self.isolation: str | None = None
        self._limit_lifted = False
        self._spawned_at = 0.0

    # --- Target protocol ---------------------------------------------------------------------

    def bring_up(self, context: RunEvents) -> Endpoint:
        self.context = context
        install = installs.ensure_installed(self.version)
        with interrupts_deferred():  # made and recorded as one step, so stop() removes it
            self._tmp = Path(tempfile.mkdtemp(prefix="milvus-harness-data-"))
        log_dir = self.log_dir or (self._tmp / "logs")
        limit = self.options.memory_limit
        if limit:
            try:
                with interrupts_deferred():
                    self.cgroup = MemoryCgroup.create(self._tmp.name.rsplit("-", 1)[-1], limit)
                self.isolation = self.cgroup.isolation
                if not self.options.oom_kill and not self.cgroup.disable_oom_killer():
                    raise UsageError("--no-oom-kill needs a cgroup v1 memory controller, which this machine lacks")
            except CgroupUnavailable as exc:
                log.warning("%s: falling back to an RSS watchdog (source 'watchdog')", exc)
                self.watchdog = Watchdog(limit, self._on_watchdog_kill)
                self.isolation = "watchdog"
        self.server = EmbeddedServer(install, self._tmp / "milvus", log_dir, self.overrides, self.cgroup)
        began = time.monotonic()
        self._spawn()
        if not self._wait_answering(time.monotonic() + START_TIMEOUT):
            code = self.server.proc.poll() if self.server.proc else None
            if code is None:
                raise TargetError(f"milvus {self.version} did not answer on {self.server.address} within "
                                  f"{START_TIMEOUT:.0f} s; logs in {log_dir}")
            # A server that panics while it starts: the panic belongs in the one line.
            crash = self.server.crash_signature() if code != -signal.SIGKILL else None
            raise TargetError(f"milvus {self.version} exited while starting ({how_it_ended(code)})"
                              + (f": {crash.line()}" if crash else "") + f"; logs in {log_dir}")
        self.startup_seconds = time.monotonic() - began
        self._ready.set()
        self.context.fire_event(component=COMPONENT, type=events.READY,
                                detail=f"milvus {self.version} answered after {self.startup_seconds:.1f} s",
                                data={"startup_seconds": round(self.startup_seconds, 2),
                                      "address": self.server.address})
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        self._watcher = ProcessWatcher(self, interval=self.options.watch_interval)
        self._watcher.start(self.context)
        return Endpoint("127.0.0.1", self.server.ports["proxy_port"], self.server.metrics_url)

    def watchers(self) -> list[Watcher]:
        return [self._watcher] if self._watcher else []

    def wait_ready(self, timeout: float) -> bool:
        """Block until the server accepts writes (flush works), across restarts, or `timeout`.

        The readiness probe of each restart sets the flag; a death clears it. Without restarts
        (--restart never) a dead server ends the wait at once.
        """
        deadline = time.monotonic() + timeout
        while not self._stopping.is_set():
            if self._ready.wait(min(0.25, max(0.0, deadline - time.monotonic()))):
                return True
            if self.options.restart == "never" and self.pid() is None:
                return False
            if time.monotonic() >= deadline:
                return False
        return False

    def prepare_verification(self, timeout: float = START_TIMEOUT) -> bool:
        """After the load: lift the limit, restart a dead server without back-off, wait for writes.

        Verification loads the collection, which under the limit that just killed the server
        would kill it again; what is measured is the load, not the check.
        """
        if self.cgroup:
            self.cgroup.lift_limit()
        self._limit_lifted = True
        if self.watchdog:
            self.watchdog.stop()
            self.watchdog.watch(None)
        self._wake.set()
        return self.wait_ready(timeout)

    def facts(self) -> dict[str, Any]:
        return {
            "target": self.kind,
            "milvus_version": self.version,
            "memory_limit_bytes": self.options.memory_limit,
            "isolation": self.isolation,
            "cgroup": str(self.cgroup.path) if self.cgroup else None,
            "address": self.server.address if self.server else None,
            "metrics_url": self.server.metrics_url if self.server else None,
            "startup_seconds": round(self.startup_seconds, 2) if self.startup_seconds else None,
            "milvus_config": {k: v for k, v in self.overrides.items()},
            "restart_policy": self.options.restart,
            "oom_kill": self.options.oom_kill,
        }

    def stop(self) -> None:
        """Stop the watcher, the supervisor and the server; remove cgroup and data dir."""
        with self._lock:  # no restart is spawned after this
            self._stopping.set()
        self._wake.set()
        if self._watcher:
            self._watcher.stop()
        if self.server:
            self.server.stop()
        if self._supervisor and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=15)
        if self.watchdog:
            self.watchdog.stop()
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # --- supervision -----------------------------------------------------------------------

    def pid(self) -> int | None:
        """The live server's pid (None while it is down)."""
        proc = self.server.proc if self.server else None
        return proc.pid if proc is not None and proc.poll() is None else None

    def memory_group(self) -> MemoryCgroup | None:
        """The cgroup the server runs in, if the limit is a cgroup."""
        return self.cgroup

    def metrics_url(self) -> str | None:
        """The server's Prometheus endpoint."""
        return self.server.metrics_url if self.server else None

    def limit_bytes(self) -> int | None:
        """The limit in force: None once lifted for verification."""
        return None if self._limit_lifted else self.options.memory_limit

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the server's process group (fault injection uses this)."""
        if self.server:
            self.server.kill(sig)

    def mark_injected_death(self) -> None:
        """The next death is a fault injection's doing: record it as such, never as an OOM."""
        self._injected_death = True

    def memory_pressure(self, active: bool) -> None:
        """An oom@ fault presses the cgroup (or stopped without a kill): the next OOM kill says
        so while it presses (it is still an OOM kill); the death's record clears it."""
        self._memory_pressure = active

    def _spawn(self) -> None:
        assert self.server is not None
        pid = self.server.start()
        self._spawned_at = time.monotonic()
        if self.watchdog:
            self.watchdog.watch(pid)

    def _wait_answering(self, deadline: float) -> bool:
        server = self.server
        assert server is not None
        return milvus_client.wait_until(lambda: milvus_client.answers(server.address), deadline,
                                 alive=lambda: server.proc is not None and server.proc.poll() is None
                                 and not self._stopping.is_set())

    def _on_watchdog_kill(self, rss: int) -> None:
        log.warning("watchdog: RSS %d passed the limit; killed the server", rss)

    def _supervise(self) -> None:
        """Wait for the server to die; record why at once; restart it after a back-off.

        This thread only ever waits for deaths and back-offs: the readiness of a restarted
        server is probed on a thread of its own, so a server that dies while it replays its
        log or while it is being probed is recorded the moment it dies.
        """
        assert self.server is not None and self.context is not None
        backoff = self.options.restart_backoff
        while not self._stopping.is_set():
            proc = self.server.proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            died_at = time.time()
            # Why it died, read before the rest of its group is killed (one of them may still be
            # writing the traceback); SIGKILL (an OOM kill, the watchdog) leaves no trace in the log.
            crash = (self.server.crash_signature()
                     if code != -signal.SIGKILL and not self._injected_death and not self._stopping.is_set()
                     else None)
            with self._lock:
                if self._stopping.is_set():
                    return
                recovering = not self._ready.is_set()
                self._ready.clear()
                self.server.kill()  # anything left in the group
                self._record_death(code, died_at, recovering, up_s=time.monotonic() - self._spawned_at,
                                   crash=crash)
            if self.options.restart == "never":
                return
            # kubelet resets its back-off after a container ran fine for 10 minutes.
            if time.monotonic() - started > 600:
                backoff = self.options.restart_backoff
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = min(backoff * 2, self.options.restart_backoff_max)
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self._spawn()
                restarted = self.server.proc
                self.context.fire_event(component=COMPONENT, type=events.RESTARTED,
                                        detail=f"restart {self.restarts} on the same data dir",
                                        data={"restarts": self.restarts})
            threading.Thread(target=self._probe_ready, args=(restarted, self.restarts),
                             name=f"ready-probe-{self.restarts}", daemon=True).start()
            threading.Thread(target=revoke_dead_sessions,
                             args=(self.server.etcd_url, self.server.session_prefix,
                                   lambda: restarted.poll() is None and not self._stopping.is_set(), START_TIMEOUT),
                             name=f"revoke-sessions-{self.restarts}", daemon=True).start()

    def _probe_ready(self, proc: subprocess.Popen[bytes], restart: int) -> None:
        """Fire Ready once the restarted `proc` accepts writes; give up when it dies.

        A probe call can hang in pymilvus's retries for minutes after the server died; the
        supervisor has recorded that death already, and this probe then fires nothing.
        """
        assert self.server is not None and self.context is not None
        address = self.server.address
        began = time.monotonic()

        def alive() -> bool:
            return proc.poll() is None and not self._stopping.is_set()

        # No deadline: a restart still unready long after is the run's NotRecovered finding
        # (run/recovery.py), and the check after the load still wants its late Ready.
        while alive():
            if milvus_client.answers(address) and milvus_client.accepts_writes(address, self.options.collection):
                seconds = time.monotonic() - began
                with self._lock:
                    if not alive() or self.server.proc is not proc:
                        return
                    self._ready.set()
                    self.context.fire_event(
                        component=COMPONENT, type=events.READY,
                        detail=f"answered and accepts writes {seconds:.1f} s after restart {restart}",
                        data={"startup_seconds": round(seconds, 2), "restarts": restart})
                return
            time.sleep(0.5)

    def _record_death(self, code: int, died_at: float, recovering: bool, up_s: float,
                      crash: crash_log.CrashSignature | None = None) -> None:
        """One event for one death: an OOM kill when the kill counter rose, else how it ended
        (with `crash`, what its log says, when it says anything)."""
        assert self.context is not None
        common = {"exit_code": code, "recovering": recovering, "up_s": round(up_s, 1)}
        kills = self.cgroup.oom_kills() if self.cgroup else (self.watchdog.oom_kills() if self.watchdog else 0)
        how = how_it_ended(code)
        injected, self._injected_death = self._injected_death, False
        pressed, self._memory_pressure = self._memory_pressure, False
        if injected and kills == self.oom_kills:
            self.context.fire_event(component=COMPONENT, type=events.EXITED, t=died_at,
                                    detail=f"killed by fault injection ({how})",
                                    data={**common, "injected": True})
        elif kills > self.oom_kills:
            self.oom_kills = kills
            source = "watchdog" if self.watchdog else "kernel"
            pressure = ", under injected memory pressure" if pressed else ""
            self.context.fire_event(
                component=COMPONENT, type=events.OOM_KILLED, t=died_at,
                detail=f"{source} OOM kill at the {self.options.memory_limit} byte limit{pressure} ({how})",
                data={**common, "oom_kill_count": kills, "source": source, "injected_pressure": pressed})
        else:
            self.context.fire_event(component=COMPONENT, type=events.EXITED, t=died_at,
                                    detail=f"server exited ({how})" + (f": {crash.line()}" if crash else ""),
                                    data={**common, "crash": crash.to_json()} if crash else common)
