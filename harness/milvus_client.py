"""Talking to Milvus from the harness process (not from Locust users): readiness, schema, counts.

pymilvus errors are translated here, where they enter: callers see TargetError or False.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

#: The level for pymilvus's loggers that the command asked for (None: pymilvus's own).
_pymilvus_level: int | None = None


def quiet_pymilvus(level: int = logging.CRITICAL) -> None:
    """Hold pymilvus's loggers at `level`. pymilvus sets its own level when it is first
    imported (lazily, after the command set one), so the level is applied again then."""
    global _pymilvus_level
    _pymilvus_level = level
    logging.getLogger("pymilvus").setLevel(level)


def open_client(address: str, timeout: float) -> Any:
    """A MilvusClient on a channel of its own (pymilvus's shared one outlives the server it
    pointed at)."""
    from pymilvus import MilvusClient

    if _pymilvus_level is not None:
        logging.getLogger("pymilvus").setLevel(_pymilvus_level)
    return MilvusClient(uri=uri_of(address), timeout=timeout, dedicated=True)


def uri_of(address: str) -> str:
    """The MilvusClient URI of a host:port address."""
    return f"http://{address}"


class MilvusAdmin:
    """A pymilvus MilvusClient on a channel of its own; close() closes it."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.client = open_client(address, timeout)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # already gone with the server
            pass

    def __enter__(self) -> "MilvusAdmin":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_version(self) -> str:
        return str(self.client.get_server_version())

    def list_collections(self, timeout: float = 10.0) -> list[str]:
        return list(self.client.list_collections(timeout=timeout))

    def flush(self, name: str, timeout: float = 30.0) -> None:
        self.client.flush(name, timeout=timeout)

    def persisted_rows(self, name: str, timeout: float = 60.0) -> int:
        """Rows in the collection's persisted (sealed or flushed) segments, as the data
        coordinator counts them: needs no query node and no load. Call it after a flush."""
        return sum(int(info.num_rows) for info in self.client.list_persistent_segments(name, timeout=timeout))

    def row_count(self, name: str, timeout: float = 60.0) -> int:
        """The collection's row count from its statistics (num_entities): no load needed."""
        return int(self.client.get_collection_stats(name, timeout=timeout)["row_count"])

    def load_for_queries(self, name: str, vector_field: str, timeout: float = 300.0) -> None:
        """Index the vector field (FLAT) unless an index exists, then load the collection."""
        if not self.client.list_indexes(name, timeout=timeout):
            params = self.client.prepare_index_params()
            params.add_index(vector_field, index_type="FLAT", metric_type="L2")
            self.client.create_index(name, params, timeout=timeout)
        self.client.load_collection(name, timeout=timeout)

    def release(self, name: str, timeout: float = 60.0) -> None:
        self.client.release_collection(name, timeout=timeout)

    def count(self, name: str, expr: str = "", timeout: float = 60.0) -> int:
        """Rows matching expr (all rows when empty), read with Strong consistency."""
        result = self.client.query(name, filter=expr, output_fields=["count(*)"],
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
