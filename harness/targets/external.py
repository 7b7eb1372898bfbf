"""The external target: a Milvus the user already runs, optionally watched through a kube context.

Nothing is installed or stopped. A URI whose host is not this machine needs --allow-remote
(checked before any lookup or connection). Every client of the run (the harness's probes and
checks, pymilvus and the raw insert channel in the Locust users) connects with the same
credentials, database and TLS (options.credentials); credentials or a database the server
refuses end the run as bad input (exit 2) before anything is created. With --kube-context the release's pods are watched (the
context passes the same safety check as kind's: a kind cluster, or named by
--allow-context); without it the run has no memory samples, only the load's view.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from harness.kube import contexts
from harness import milvus_client
from harness.errors import TargetError, UsageError
from harness.targets.protocol import Endpoint, Target, TargetOptions, Watcher
from harness.watch import events
from harness.watch.kubernetes import DEFAULT_SELECTOR, KubernetesWatcher
from harness.watch.events import RunEvents

log = logging.getLogger(__name__)

DEFAULT_PORT = 19530


def parse_uri(uri: str, flag: str = "--uri") -> tuple[str, int]:
    """'http://host:port', 'https://host:port' (TLS), 'tcp://host:port', 'host:port' or 'host' -> (host, port);
    `flag` names the option it came from in the refusal."""
    text = uri.strip()
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname or not 0 < port < 65536:
        raise UsageError(f"{flag} {uri!r} is not a Milvus address; use e.g. http://127.0.0.1:19530")
    return parts.hostname, port


def check_remote(options: TargetOptions) -> tuple[str, int]:
    """The URI's (host, port), refused when the host is not this machine and --allow-remote
    was not given. Decided from the text alone: no lookup, no connection before it."""
    if not options.uri:
        raise UsageError("--target external needs --uri, e.g. --uri http://127.0.0.1:19530")
    host, port = parse_uri(options.uri)
    if not options.allow_remote and not contexts.is_loopback_host(host):
        raise UsageError(f"--uri {options.uri!r} is not on this machine (allowed without --allow-remote: "
                         "127.0.0.1, ::1, localhost); add --allow-remote to load a remote Milvus")
    return host, port


class ExternalTarget(Target):
    """Target protocol over an existing Milvus: connect, optionally watch, never install."""

    kind = "external"

    def __init__(self, options: TargetOptions, answer_timeout: float = 30.0) -> None:
        self.options = options
        self.host, self.port = check_remote(options)
        # Refused here, before anything connects, when the context is not a local kind cluster.
        self.context_name = contexts.check_context(options)
        self._answer_timeout = answer_timeout
        self._watcher: KubernetesWatcher | None = None
        self.server_version: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connection(self) -> milvus_client.Connection:
        return milvus_client.Connection(self.address, self.options.credentials)

    def bring_up(self, context: RunEvents) -> Endpoint:
        began = time.monotonic()
        if not milvus_client.wait_until(lambda: milvus_client.answers(self.connection), began + self._answer_timeout,
                                        interval=1.0):
            raise TargetError(f"Milvus at {self.options.uri} does not answer within {self._answer_timeout:.0f} s")
        try:
            # The first call with the credentials: a refusal (UsageError) ends the run here.
            with milvus_client.MilvusAdmin(self.connection) as admin:
                self.server_version = admin.server_version()
        except UsageError:
            raise
        except Exception as exc:  # the version is a fact for run.json, not a requirement
            log.debug("server version unknown: %s", exc)
        context.fire_event(component="proxy", type=events.READY,
                           detail=f"milvus {self.server_version or ''} answered at {self.address}".replace("  ", " "),
                           data={"address": self.address, "server_version": self.server_version})
        if self.context_name is not None:
            self._watcher = KubernetesWatcher.for_context(self.context_name, namespace=self.options.namespace,
                                                          selector=DEFAULT_SELECTOR,
                                                          interval=self.options.watch_interval,
                                                          scrape_components=self.options.under_test)
            self._watcher.start(context)
        return Endpoint(self.host, self.port, credentials=self.options.credentials)

    def watchers(self) -> list[Watcher]:
        return [self._watcher] if self._watcher else []

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return milvus_client.wait_until(lambda: milvus_client.accepts_writes(self.connection, self.options.collection), deadline, interval=1.0)

    def facts(self) -> dict[str, Any]:
        return {
            "target": self.kind,
            "uri": self.options.uri,
            "address": self.address,
            "client": self.options.credentials.to_json(),  # user, database, TLS: never a secret
            "milvus_version": self.options.milvus_version or self.server_version,
            "server_version": self.server_version,
            "memory_limit_bytes": self.options.memory_limit,
            "isolation": "whatever the deployment has (pod limits when watched)",
            "kube_context": self.context_name,
            "namespace": self.options.namespace if self.context_name else None,
            "selector": DEFAULT_SELECTOR if self.context_name else None,
        }

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
