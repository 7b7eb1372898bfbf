"""Talking to Milvus: how to reach it (Connection: address, credentials, database, TLS) and,
from the harness process, readiness, schema and counts.

Every MilvusClient argument and the raw insert channel's gRPC credentials and metadata are
made here, nowhere else. pymilvus errors are translated here, where they enter: callers see
TargetError, UsageError (credentials refused) or False.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from harness.errors import UsageError

log = logging.getLogger(__name__)

#: The level for pymilvus's loggers that the command asked for (None: pymilvus's own).
_pymilvus_level: int | None = None

#: The environment variables the credentials come from when no flag gives them; the Locust
#: child gets them the same way, so they never reach a file or a command line.
TOKEN_ENV, USER_ENV, PASSWORD_ENV = "MILVUS_TOKEN", "MILVUS_USER", "MILVUS_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """Who the harness is to Milvus, which database it uses, and whether the channel is TLS.

    The password and the token are secrets: not in repr, not in to_json (which is what files
    may hold), only in to_env (what a child process gets)."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    db_name: str | None = None
    secure: bool = False
    #: A private CA's certificate (PEM) the server's certificate must chain to.
    server_pem_path: str | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """The MilvusClient arguments for these credentials (only those that are set)."""
        kwargs: dict[str, Any] = {"secure": self.secure}
        if self.token:
            kwargs["token"] = self.token
        elif self.user:
            kwargs.update(user=self.user, password=self.password or "")
        if self.db_name:
            kwargs["db_name"] = self.db_name
        if self.server_pem_path:
            kwargs["server_pem_path"] = self.server_pem_path
        return kwargs

    def grpc_metadata(self) -> list[tuple[str, str]]:
        """The call metadata pymilvus adds to every request: `authorization` (base64 of the token,
        or of user:password) and `dbname`."""
        metadata = []
        if self.token:
            metadata.append(("authorization", base64.b64encode(self.token.encode()).decode()))
        elif self.user:
            metadata.append(("authorization",
                             base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()))
        if self.db_name:
            metadata.append(("dbname", self.db_name))
        return metadata

    def to_json(self) -> dict[str, Any]:
        """What run.json and the load settings sent to Locust may hold: never the password or the token."""
        return {"user": self.user, "auth": "token" if self.token else "password" if self.user else None,
                "db_name": self.db_name, "tls": self.secure, "tls_ca": self.server_pem_path}

    def to_env(self) -> dict[str, str]:
        """The secrets as a child process's environment (MILVUS_USER / MILVUS_PASSWORD / MILVUS_TOKEN)."""
        env = {USER_ENV: self.user, PASSWORD_ENV: self.password, TOKEN_ENV: self.token}
        return {name: value for name, value in env.items() if value}

    @classmethod
    def from_parts(cls, public: Mapping[str, Any], env: Mapping[str, str]) -> "Credentials":
        """The inverse of to_json + to_env: how a Locust process gets the harness's credentials."""
        return cls(user=env.get(USER_ENV) or None, password=env.get(PASSWORD_ENV) or None,
                   token=env.get(TOKEN_ENV) or None, db_name=public.get("db_name"),
                   secure=bool(public.get("tls")), server_pem_path=public.get("tls_ca"))


NO_CREDENTIALS = Credentials()


@dataclass(frozen=True)
class Connection:
    """A Milvus gRPC address ('host:port') and how to talk to it."""

    address: str
    credentials: Credentials = NO_CREDENTIALS

    @property
    def uri(self) -> str:
        return f"{'https' if self.credentials.secure else 'http'}://{self.address}"

    def __str__(self) -> str:
        return self.address


#: What the helpers below accept: a bare 'host:port' means no credentials, the default database.
Address = Union[str, Connection]


def as_connection(address: Address) -> Connection:
    """A Connection for either form of address."""
    return address if isinstance(address, Connection) else Connection(address)


# What Milvus 2.3 answers (measured): UNAUTHENTICATED "auth check failure, please check username and
# password are correct" or "missing authorization in header"; code 800 "database not found[database=x]".
_REFUSALS = ("auth check failure", "unauthenticated", "database not found", "permission denied")


def refusal(exc: BaseException) -> str | None:
    """The server's reason when `exc`, or an error it was raised from, says it refused these
    credentials or this database (as opposed to not answering), else None. (pymilvus 2.6 wraps
    the refusal of its Connect call in "Fail connecting to server": the cause says why.)"""
    import grpc

    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:  # a chain can loop back on itself
        visited.add(id(seen))
        if isinstance(seen, grpc.RpcError) and seen.code() in (  # type: ignore[attr-defined]
                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return f"{seen.code().name}: {seen.details()}"  # type: ignore[attr-defined]
        lowered = str(seen).lower()
        if any(marker in lowered for marker in _REFUSALS):
            return " ".join(str(seen).split())[:200]
        seen = seen.__cause__ or seen.__context__
    return None


def open_channel(address: Address, options: Sequence[tuple[str, Any]] = ()) -> Any:
    """A raw gRPC channel to Milvus as pymilvus would open it: TLS (with the private CA if
    given) when the connection is secure, plaintext otherwise. Send Credentials.grpc_metadata()
    with every call, as pymilvus's interceptors do."""
    import grpc

    connection = as_connection(address)
    credentials = connection.credentials
    if not credentials.secure:
        return grpc.insecure_channel(connection.address, options=list(options))
    ca = Path(credentials.server_pem_path).read_bytes() if credentials.server_pem_path else None
    return grpc.secure_channel(connection.address, grpc.ssl_channel_credentials(root_certificates=ca),
                               options=list(options))



def quiet_pymilvus(level: int = logging.CRITICAL) -> None:
    """Hold pymilvus's loggers at `level`. pymilvus sets its own level when it is first
    imported (lazily, after the command set one), so the level is applied again then."""
    global _pymilvus_level
    _pymilvus_level = level
    logging.getLogger("pymilvus").setLevel(level)


def open_client(address: Address, timeout: float) -> Any:
    """A MilvusClient on a channel of its own (pymilvus's shared one outlives the server it
    pointed at), with the credentials, database and TLS of `address`; the only place the
    harness opens one. Credentials the server refuses are a UsageError (exit 2): retrying
    cannot fix them."""
    from pymilvus import MilvusClient

    if _pymilvus_level is not None:
        logging.getLogger("pymilvus").setLevel(_pymilvus_level)
    connection = as_connection(address)
    try:
        return MilvusClient(uri=connection.uri, timeout=timeout, dedicated=True,
                            **connection.credentials.connect_kwargs())
    except Exception as exc:
        refused = refusal(exc)
        if refused:
            raise UsageError(f"Milvus at {connection.uri} refused the connection: {refused}") from None
        raise


class MilvusAdmin:
    """A pymilvus MilvusClient on a channel of its own; close() closes it."""

    def __init__(self, address: Address, timeout: float = 10.0) -> None:
        self.connection = as_connection(address)
        self.address = self.connection.address
        self.client = open_client(self.connection, timeout)

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


def answers(address: Address, timeout: float = 3.0) -> bool:
    """True when the server at address answers a ShowCollections call, or answers that it
    refuses these credentials (it is up: whoever asked next learns of the refusal)."""
    try:
        with MilvusAdmin(address, timeout=timeout) as admin:
            admin.list_collections(timeout=timeout)
        return True
    except UsageError as exc:
        log.debug("%s answers, refusing: %s", address, exc)
        return True
    except Exception as exc:  # any pymilvus/grpc error means "not yet"
        log.debug("%s not answering: %s", address, exc)
        return False


def accepts_writes(address: Address, collection: str | None, timeout: float = 10.0) -> bool:
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


def server_version(address: Address, timeout: float = 10.0) -> str:
    """The server's own GetVersion answer, e.g. 'v2.6.15'."""
    with MilvusAdmin(address, timeout=timeout) as admin:
        return admin.server_version()
