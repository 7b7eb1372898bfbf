"""Talking to Milvus from the harness process (not from Locust users): readiness, schema, counts.

pymilvus errors are translated here, where they enter: callers see TargetError or False.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from typing import Any

log = logging.getLogger(__name__)


def _bounded(timeout: float) -> int:
    """pymilvus ends its retries (75 of them, ~3.5 min against a dead server) at `timeout`
    only when it is an int; a float is ignored, so a readiness probe outlives the server."""
    return max(1, math.ceil(timeout))


class MilvusAdmin:
    """A pymilvus ORM connection under its own alias; close() drops it."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        from pymilvus import connections

        self.address = address
        self.alias = f"harness-{uuid.uuid4().hex[:8]}"
        host, port = address.rsplit(":", 1)
        connections.connect(alias=self.alias, host=host, port=port, timeout=timeout)

    def close(self) -> None:
        from pymilvus import connections

        try:
            connections.disconnect(self.alias)
        except Exception:  # already gone with the server
            pass

    def __enter__(self) -> "MilvusAdmin":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_version(self) -> str:
        from pymilvus import utility

        return str(utility.get_server_version(using=self.alias))

    def list_collections(self, timeout: float = 10.0) -> list[str]:
        from pymilvus import utility

        return list(utility.list_collections(timeout=_bounded(timeout), using=self.alias))

    def collection(self, name: str) -> Any:
        from pymilvus import Collection

        return Collection(name, using=self.alias)

    def flush(self, name: str, timeout: float = 30.0) -> None:
        self.collection(name).flush(timeout=_bounded(timeout))

    def persisted_rows(self, name: str, timeout: float = 60.0) -> int:
        """Rows in the collection's persisted (sealed or flushed) segments, as the data
        coordinator counts them: needs no query node and no load. Call it after a flush."""
        from pymilvus import connections

        handler = connections._fetch_handler(self.alias)  # pymilvus has no public wrapper for this RPC
        infos = handler.get_persistent_segment_infos(name, timeout=timeout)
        return sum(int(info.num_rows) for info in infos)

    def count(self, name: str, expr: str = "", timeout: float = 60.0) -> int:
        """Rows matching expr (all rows when empty), read with Strong consistency."""
        collection = self.collection(name)
        result = collection.query(expr=expr or "", output_fields=["count(*)"],
                                  consistency_level="Strong", timeout=timeout)
        return int(result[0]["count(*)"])


def answers(address: str, timeout: float = 3.0) -> bool:
    """True when the server at address answers a ShowCollections call."""
    try:
        with MilvusAdmin(address, timeout=timeout) as admin:
            admin.list_collections(timeout=timeout)
        return True
    except Exception as exc:  # any pymilvus/grpc error means "not yet"
        log.debug("%s not answering: %s", address, exc)
        return False


def accepts_writes(address: str, collection: str | None, timeout: float = 10.0) -> bool:
    """True when the scenario's collection can be flushed: after a restart the server answers
    reads ~10 s before the old session expires, and until then flush fails with "node not
    match". Only that collection is flushed, never the server's others; before it exists,
    answering is enough.

    Returns within about 2 x timeout even when the server dies meanwhile: pymilvus's wait
    for the flush retries its state polls 75 times (minutes) whatever the timeout, so the
    probe runs on a daemon thread that is left to finish on its own."""
    accepted: list[bool] = []

    def probe() -> None:
        try:
            with MilvusAdmin(address, timeout=timeout) as admin:
                names = admin.list_collections(timeout=timeout)
                if collection is not None and collection in names:
                    admin.flush(collection, timeout=timeout)
            accepted.append(True)
        except Exception as exc:
            log.debug("%s does not accept writes yet: %s", address, exc)

    thread = threading.Thread(target=probe, name="write-probe", daemon=True)
    thread.start()
    thread.join(2 * timeout + 1)
    return bool(accepted)


def wait_until(check, deadline: float, interval: float = 0.25, alive=lambda: True) -> bool:
    """Poll check() until it is true, the deadline passes, or alive() turns false."""
    while time.monotonic() < deadline and alive():
        if check():
            return True
        time.sleep(interval)
    return False


def server_version(address: str, timeout: float = 10.0) -> str:
    """The server's own GetVersion answer, e.g. 'v2.6.15'."""
    with MilvusAdmin(address, timeout=timeout) as admin:
        return admin.server_version()
