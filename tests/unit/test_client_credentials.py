"""--user/--password, --token, --db-name, https:// and --tls-ca: how they are read (flags before
the MILVUS_* environment), refused, kept out of what is written, and what goes on the wire.

The wire test runs a loopback gRPC server with TLS from a CA made for the test, which records
the metadata of every call: the raw insert channel must send what pymilvus itself sends
(authorization, dbname) over the same TLS. The Milvus side of credentials is tested against a
real Milvus in tests/integration/test_auth.py."""

from __future__ import annotations

import base64
import threading
from concurrent import futures

import grpc
import pytest

from harness.cli import build_parser
from harness.commands.options import credentials_from_args, redacted
from harness.errors import UsageError
from harness.load import batches
from harness.load.insert import NumpyInserter
from harness.milvus_client import Connection, Credentials, open_client
from harness.scenario import model as scenarios
from tls import write_ca_and_server_cert

ENV = {"MILVUS_USER": "env-user", "MILVUS_PASSWORD": "env-pw", "MILVUS_TOKEN": ""}


def _credentials(*flags: str, environ: dict[str, str] | None = None) -> Credentials:
    args = build_parser().parse_args(["run", *flags])
    return credentials_from_args(args, environ if environ is not None else {})


def _external(*flags: str, uri: str = "http://127.0.0.1:19530") -> tuple[str, ...]:
    return ("--target", "external", "--uri", uri, *flags)


def test_flags_come_before_the_environment_and_the_environment_fills_in():
    from_env = _credentials(*_external(), environ=ENV)
    assert (from_env.user, from_env.password, from_env.token) == ("env-user", "env-pw", None)
    from_flags = _credentials(*_external("--token", "root:Milvus"), environ=ENV)
    assert (from_flags.user, from_flags.password, from_flags.token) == (None, None, "root:Milvus")
    token_env = _credentials(*_external("--db-name", "perf"), environ={"MILVUS_TOKEN": "api-key"})
    assert token_env.token == "api-key" and token_env.db_name == "perf"
    assert token_env.connect_kwargs() == {"secure": False, "token": "api-key", "db_name": "perf"}


def test_other_targets_refuse_the_flags_and_ignore_the_environment():
    assert _credentials(environ=ENV) == Credentials()
    with pytest.raises(UsageError, match="only for --target external"):
        _credentials("--user", "u", "--password", "p")


@pytest.mark.parametrize("flags,environ,message", [
    (("--token", "t", "--user", "u", "--password", "p"), {}, "are exclusive"),
    (("--user", "u"), {}, "--password is missing"),
    (("--password", "p"), {}, "--user is missing"),
    ((), {"MILVUS_TOKEN": "t", "MILVUS_USER": "u", "MILVUS_PASSWORD": "p"}, "are exclusive"),
    (("--tls-ca", __file__), {}, "needs an https:// --uri"),
    (("--db-name", " "), {}, "--db-name is empty"),
])
def test_contradictions_are_refused(flags, environ, message):
    with pytest.raises(UsageError, match=message):
        _credentials(*_external(*flags), environ=environ)


def test_https_means_tls_and_the_ca_reaches_the_client_config(tmp_path):
    ca = tmp_path / "ca.pem"
    with pytest.raises(UsageError, match="is not a file"):
        _credentials(*_external("--tls-ca", str(ca), uri="https://127.0.0.1:19530"))
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    credentials = _credentials(*_external("--tls-ca", str(ca), uri="https://127.0.0.1:19530"))
    assert credentials.secure and credentials.server_pem_path == str(ca.resolve())
    assert credentials.connect_kwargs() == {"secure": True, "server_pem_path": str(ca.resolve())}
    assert Connection("127.0.0.1:19530", credentials).uri == "https://127.0.0.1:19530"
    assert not _credentials(*_external()).secure


def test_locust_gets_the_runs_credentials_in_its_environment_and_no_others(monkeypatch):
    from harness.run.locust_procs import locust_env

    monkeypatch.setenv("MILVUS_TOKEN", "the-shell's-token")
    env = locust_env(Credentials(user="u", password="pw").to_env(), {"EXTRA": "1"})
    assert (env["MILVUS_USER"], env["MILVUS_PASSWORD"], env["EXTRA"]) == ("u", "pw", "1")
    assert "MILVUS_TOKEN" not in env  # one kind of credentials, the run's
    assert "MILVUS_TOKEN" not in locust_env({}) and env["PATH"] == __import__("os").environ["PATH"]


def test_secrets_stay_out_of_repr_json_and_the_recorded_command():
    credentials = Credentials(user="u", password="pw-123", token=None, db_name="d")
    assert "pw-123" not in repr(credentials) and "pw-123" not in str(credentials.to_json())
    assert credentials.to_env() == {"MILVUS_USER": "u", "MILVUS_PASSWORD": "pw-123"}
    assert Credentials.from_parts(credentials.to_json(), credentials.to_env()) == credentials
    argv = ["run", "--password", "pw-123", "--token=tk-456", "--pass", "pw-789", "--web-login", "a:pw-0",
            "--user", "u"]
    assert redacted(argv) == ["run", "--password", "***", "--token=***", "--pass", "***", "--web-login", "***",
                              "--user", "u"]


# --- on the wire ----------------------------------------------------------------------------


class MetadataRecorder(grpc.GenericRpcHandler):
    """Answers every unary call with an empty message (all fields default: status Success)
    and records (method, metadata) of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def service(self, details):
        with self.lock:
            self.calls.append((details.method, dict(details.invocation_metadata)))
        return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")

    def metadata_of(self, method_suffix: str) -> dict[str, str]:
        return next(md for method, md in self.calls if method.endswith(method_suffix))


@pytest.fixture
def tls_recorder(tmp_path):
    ca, server_pem, server_key = write_ca_and_server_cert(tmp_path)
    recorder = MetadataRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[recorder])
    credentials = grpc.ssl_server_credentials([(server_key.read_bytes(), server_pem.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield recorder, f"127.0.0.1:{port}", ca
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("auth", [{"user": "loader", "password": "pw:with:colons"}, {"token": "api-key-123"}],
                         ids=["user-password", "token"])
def test_the_raw_insert_channel_sends_what_pymilvus_sends_over_the_same_tls(tls_recorder, auth):
    recorder, address, ca = tls_recorder
    args = build_parser().parse_args(["run", *_external("--db-name", "perf", "--tls-ca", str(ca),
                                                        uri=f"https://{address}")])
    connection = Connection(address, credentials_from_args(args, {**{"MILVUS_" + k.upper(): v
                                                                      for k, v in auth.items()}}))
    client = open_client(connection, timeout=10)  # pymilvus, with the harness's arguments
    try:
        client.list_collections()  # pymilvus 2.6 sends dbname with each call, not at Connect
    finally:
        client.close()
    pymilvus_sent = recorder.metadata_of("/ShowCollections")

    scenario = scenarios.load("smoke").with_overrides({"batch_rows": "10"})
    inserter = NumpyInserter(connection, scenario.collection, scenario, timeout=10)
    try:
        inserter.insert(batches.generate_batch(scenario, 0))
    finally:
        inserter.close()
    harness_sent = recorder.metadata_of("/Insert")

    assert pymilvus_sent["dbname"] == harness_sent["dbname"] == "perf"
    assert pymilvus_sent["authorization"] == harness_sent["authorization"]
    expected = auth.get("token") or f"{auth['user']}:{auth['password']}"
    assert base64.b64decode(harness_sent["authorization"]).decode() == expected


def test_a_refusal_wrapped_by_pymilvus_is_found_in_its_cause():
    import grpc
    from pymilvus.exceptions import MilvusException

    from harness.milvus_client import refusal

    class Unauthenticated(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAUTHENTICATED

        def details(self):
            return "missing authorization in header"

    # pymilvus 2.6's Connect: "Fail connecting to server ..." raised from the server's answer
    try:
        try:
            raise Unauthenticated()
        except grpc.RpcError as cause:
            raise MilvusException(2, "Fail connecting to server on 127.0.0.1:1, illegal connection params "
                                     "or server unavailable") from cause
    except MilvusException as wrapped:
        assert refusal(wrapped) == "UNAUTHENTICATED: missing authorization in header"
    # a server that does not answer is not a refusal
    assert refusal(MilvusException(2, "Fail connecting to server on 127.0.0.1:1")) is None
    # a chain that loops back on itself ends (grpc's errors can be their own context)
    first, second = MilvusException(2, "Fail connecting"), RuntimeError("unavailable")
    first.__context__, second.__context__ = second, first
    assert refusal(first) is None
