"""The Target protocol (start / endpoint / watchers / stop, used as a context manager), the
Watcher protocol, the Endpoint and the TargetOptions every target is made from.

`make_target` (harness/run/lifecycle.py) returns a Target and its callers use only what is
declared here. The targets subclass Target explicitly, so what is written below once is theirs
unless they say otherwise: no version known, no server logs kept, nothing to prepare before
verification, and start() = bring_up() that cleans up what it made before an error leaves it
(as pypa/build's isolated environments do), also when used as a context manager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.milvus_client import NO_CREDENTIALS, Connection, Credentials
from harness.watch.events import RunEvents


@dataclass(frozen=True)
class Endpoint:
    """How clients reach Milvus: a gRPC address, and where its Prometheus metrics are if known."""

    host: str
    port: int
    metrics_url: str | None = None
    #: external: the --user/--password or --token, --db-name and TLS every client uses.
    credentials: Credentials = NO_CREDENTIALS

    @property
    def uri(self) -> str:
        return self.connection.uri

    @property
    def connection(self) -> Connection:
        """The address with its credentials: what every client of the run connects with."""
        return Connection(self.address, self.credentials)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@runtime_checkable
class Watcher(Protocol):
    """Samples components and fires samples and events on a RunEvents until stopped."""

    def start(self, context: RunEvents) -> None: ...

    def stop(self) -> None: ...


@runtime_checkable
class Target(Protocol):
    """A Milvus deployment the harness can load and watch."""

    #: 'embedded', 'kind' or 'external'
    kind: str
    #: The Milvus under test as run keys and reports name it (embedded: the version; kind: the
    #: image tag); None when the target cannot tell before it starts.
    version: str | None = None
    #: Where the server's own logs go, for targets that keep them (embedded); a run points it
    #: at its logs/ directory before start().
    log_dir: Path | None = None

    def start(self, context: RunEvents) -> Endpoint:
        """Bring Milvus up (install if needed), wait until it answers, return its endpoint.

        A failure half-way stops what bring_up made before the error leaves start().
        """
        try:
            return self.bring_up(context)
        except BaseException:
            self.stop()
            raise

    def bring_up(self, context: RunEvents) -> Endpoint:
        """What start() does, target by target."""
        ...

    def watchers(self) -> list[Watcher]:
        """Watchers for every Milvus component of this deployment."""
        ...

    def wait_ready(self, timeout: float) -> bool:
        """After a restart: block until the server accepts writes again (flush works)."""
        ...

    def prepare_verification(self) -> bool:
        """After the load, before the acked rows are counted: make the server able to answer
        (embedded: lift the limit, restart a dead server); False when it cannot."""
        return True

    def facts(self) -> dict[str, Any]:
        """What run.json records: version or image, memory limit, how the limit is enforced."""
        ...

    def stop(self) -> None:
        """Stop everything start() made; safe to call twice and after a failed start."""
        ...

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class TargetOptions:
    """Target options shared by run, ui, matrix and bisect (validated before anything starts)."""

    target: str = "embedded"
    milvus_version: str | None = None
    memory_limit: int | None = None
    milvus_config: dict[str, str] = field(default_factory=dict)
    restart: str = "always"  # always | never
    oom_kill: bool = True  # False: the kernel pauses the server at the limit (a stall) instead
    restart_backoff: float = 10.0
    restart_backoff_max: float = 300.0
    watch_interval: float = 1.0
    stall_seconds: float = 20.0
    # kind / external
    kube_context: str | None = None
    allow_context: str | None = None
    namespace: str = "default"
    release: str = "milvus"
    image_repository: str = "milvusdb/milvus"  # kind: where the image comes from
    uri: str | None = None
    allow_remote: bool = False  # external: a --uri that is not loopback
    #: external: credentials, database and TLS (https:// URI); secrets are kept out of repr.
    credentials: Credentials = NO_CREDENTIALS
    #: The scenario's collection: the only one the harness flushes (set by lifecycle.prepare).
    collection: str | None = None
    #: The scenario's rules.under_test: on kind and external the Kubernetes watcher reads these
    #: roles' own /metrics on every poll (set by lifecycle.prepare).
    under_test: tuple[str, ...] = ("streamingnode",)
