"""Revoking a dead embedded server's sessions: only coordinator keys of an older server ID, never the newest.

The etcd side is a small stand-in of etcd's JSON gateway on loopback (the two calls used:
/v3/kv/range and /v3/lease/revoke), with the session layout a 2.3.5 server writes (keys under
by-dev/meta/session/, the `id` counter holding the next server ID). The real thing is covered
by tests/integration/test_recovery.py."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from harness.targets.etcd_sessions import revoke_dead_sessions

PREFIX = "by-dev/meta/session/"


class Gateway:
    """Session keys and leases as etcd holds them; a revoke deletes the lease's keys."""

    def __init__(self) -> None:
        self.counter = 0
        self.keys: dict[str, tuple[int, str]] = {}  # key -> (ServerID, lease)
        self.revoked: list[str] = []
        self.lock = threading.Lock()

    def register(self, server_id: int, *roles: str) -> None:
        with self.lock:
            self.counter = max(self.counter, server_id + 1)
            for role in roles:
                self.keys[PREFIX + role] = (server_id, f"{server_id}{len(self.keys):04d}")

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if path == "/v3/lease/revoke":
                self.revoked.append(body["ID"])
                self.keys = {k: v for k, v in self.keys.items() if v[1] != body["ID"]}
                return {}
            kvs = [{"key": _b64(PREFIX + "id"), "value": _b64(str(self.counter))}] if self.counter else []
            kvs += [{"key": _b64(k), "value": _b64(json.dumps({"ServerID": sid})), "lease": lease}
                    for k, (sid, lease) in self.keys.items()]
            return {"kvs": kvs}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    state = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(state.answer(self.path, body)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_dead_servers_sessions_are_revoked_once_the_new_server_has_its_id(gateway) -> None:
    state, url = gateway
    state.register(4, "rootcoord", "datacoord", "datanode-4")  # the dead server, renewed by etcd's restart
    found: list[int] = []
    worker = threading.Thread(target=lambda: found.append(revoke_dead_sessions(url, PREFIX, lambda: True, 30)))
    worker.start()
    # Until the new server takes its ID, server 4 is the newest: nothing is revoked.
    worker.join(0.6)
    assert worker.is_alive() and not state.revoked
    state.register(5, "datanode-5", "proxy-5")  # the new server: its ID, then its non-exclusive roles
    worker.join(10)
    assert found == [2]  # the coordinators: they block the new server's
    # The newest server's keys untouched, and the dead server's datanode left to its TTL (see
    # the module's docstring for why).
    assert sorted(state.keys) == [PREFIX + "datanode-4", PREFIX + "datanode-5", PREFIX + "proxy-5"]


def test_nothing_is_revoked_when_only_the_newest_server_holds_sessions(gateway) -> None:
    state, url = gateway
    state.register(7, "rootcoord", "datanode-7")
    assert revoke_dead_sessions(url, PREFIX, lambda: True, 1.0) == 0
    assert not state.revoked and len(state.keys) == 2


def test_it_gives_up_when_the_server_dies_or_etcd_never_answers() -> None:
    calls = iter([True, True, False])
    # Nothing listens on port 9 of loopback: the calls fail until alive() turns false.
    assert revoke_dead_sessions("http://127.0.0.1:9", PREFIX, lambda: next(calls), 30) == 0
