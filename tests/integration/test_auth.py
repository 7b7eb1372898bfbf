"""The external target against a real embedded Milvus with authorization on
(common.security.authorizationEnabled=true) and a database made for the test: credentials the
server refuses end the run with one line and exit 2, before anything is created; the right
ones (from the environment, as documented) load through pymilvus and the raw insert channel
into that database, and no secret reaches a file of the run. And against a real Milvus that
speaks only TLS (common.security.tlsMode=1) with a certificate from a private CA: an https://
--uri with --tls-ca loads and verifies through it."""

from __future__ import annotations

import os

import pytest

from harness import milvus_client
from harness.milvus_client import Connection, Credentials
from harness.rundir import read_json
from harness.targets import install as installs
from harness.targets.embedded import DEFAULT_CONFIG, EmbeddedTarget
from harness.targets.embedded_server import EmbeddedServer
from harness.targets.milvus_config import parse_config_overrides
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents
from run_dirs import only_run
from tls import write_ca_and_server_cert
from waiting import wait_for

pytestmark = pytest.mark.milvus
GiB = 2**30
ROOT = Credentials(user="root", password="Milvus")  # Milvus's built-in first user
DB, USER, PASSWORD = "harness_auth", "loader", "s3cret-Loader-pw"
COLLECTION = "harness_smoke"


def _make_loader(address: str) -> None:
    """As root: the test's database, and a user with the admin role (it may create collections)."""
    with milvus_client.MilvusAdmin(Connection(address, ROOT), timeout=30) as admin:
        admin.client.create_database(DB)
        admin.client.create_user(USER, PASSWORD)
        admin.client.grant_role(USER, "admin")


def _collections(address: str, db_name: str | None) -> list[str]:
    with milvus_client.MilvusAdmin(Connection(address, Credentials(user="root", password="Milvus",
                                                                   db_name=db_name)), timeout=30) as admin:
        return admin.list_collections()


def test_credentials_and_database_reach_every_client_and_no_file(tmp_path, milvus_version, harness_cli):
    options = TargetOptions(milvus_version=milvus_version, memory_limit=4 * GiB,
                            milvus_config={"common.security.authorizationEnabled": "true"})
    with EmbeddedTarget(options) as server:
        server.start(RunEvents())
        address = server.server.address
        _make_loader(address)
        common = ("run", "--target", "external", "--uri", f"http://{address}", "--db-name", DB,
                  "--scenario", "smoke", "--set", "total_rows=50000")

        # A wrong password: one line, exit 2, nothing created, nothing left running.
        refused = harness_cli.run(*common, "--user", USER, "--password", "wrong-password",
                                  "--report-dir", str(tmp_path / "refused"), timeout=300)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "refused" in refused.stderr and "auth" in refused.stderr.lower(), refused.stderr
        assert not list((tmp_path / "refused").glob("*/logs/locust.log"))  # Locust was never started
        assert COLLECTION not in _collections(address, DB)

        # The right credentials, from the environment: every batch lands in the test's database.
        env = {**os.environ, milvus_client.USER_ENV: USER, milvus_client.PASSWORD_ENV: PASSWORD}
        proc = harness_cli.start(*common, "--report-dir", str(tmp_path / "ok"), env=env)
        out, err = proc.communicate(timeout=600)
        run_dir = only_run(tmp_path / "ok")
        summary = read_json(run_dir / "summary.json")
        assert summary["verdict"] == "PASS" and proc.returncode == 0, out + err
        assert summary["rows"]["acked"] == summary["rows"]["verified"] == 50_000
        assert read_json(run_dir / "run.json")["facts"]["client"] == {
            "user": USER, "auth": "password", "db_name": DB, "tls": False, "tls_ca": None}
        with milvus_client.MilvusAdmin(Connection(address, Credentials(user="root", password="Milvus",
                                                                       db_name=DB)), timeout=30) as admin:
            admin.flush(COLLECTION)
            assert admin.row_count(COLLECTION) == 50_000
        assert COLLECTION not in _collections(address, None)  # not in the default database

        # The password is in no file the runs wrote (run.json, acks, logs, reports).
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert PASSWORD.encode() not in path.read_bytes(), path


def test_an_https_uri_with_a_private_ca_loads_a_milvus_that_speaks_only_tls(tmp_path, milvus_version, harness_cli):
    ca, server_pem, server_key = write_ca_and_server_cert(tmp_path)
    overrides = parse_config_overrides({**DEFAULT_CONFIG, "common.security.tlsMode": "1",
                                        "tls.serverPemPath": str(server_pem), "tls.serverKeyPath": str(server_key)})
    (tmp_path / "milvus").mkdir()
    (tmp_path / "logs").mkdir()
    # The server alone (EmbeddedTarget's own probes speak plaintext): started and stopped here.
    server = EmbeddedServer(installs.ensure_installed(milvus_version), tmp_path / "milvus", tmp_path / "logs",
                            overrides, None)
    server.start()
    try:
        tls = Connection(server.address, Credentials(secure=True, server_pem_path=str(ca)))
        wait_for(lambda: milvus_client.answers(tls), timeout=240, what="the TLS Milvus answers through the CA")
        assert not milvus_client.answers(server.address)  # plaintext gets nowhere: it really is TLS only
        result = harness_cli.run("run", "--target", "external", "--uri", f"https://{server.address}",
                                 "--tls-ca", str(ca), "--scenario", "smoke", "--set", "total_rows=20000",
                                 "--report-dir", str(tmp_path / "reports"), timeout=600)
        run_dir = only_run(tmp_path / "reports")
        summary = read_json(run_dir / "summary.json")
        assert summary["verdict"] == "PASS" and result.returncode == 0, result.stdout + result.stderr
        assert summary["rows"]["acked"] == summary["rows"]["verified"] == 20_000
        assert read_json(run_dir / "run.json")["facts"]["client"] == {
            "user": None, "auth": None, "db_name": None, "tls": True, "tls_ca": str(ca.resolve())}
    finally:
        server.stop()
