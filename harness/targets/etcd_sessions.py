"""A restarted embedded server need not wait out the sessions of the server it replaces.

Milvus registers each role's session in etcd under a lease (common.session.ttl) and a new
server cannot take an exclusive role (rootcoord, datacoord, ...) while the old key lives. The
embedded server carries its own etcd, which renews every lease when it restarts: so each
restart waited a whole TTL for sessions whose process was already dead. With an etcd of its
own (a cluster's), that TTL runs out while the pod is down. Here the dead server's exclusive
coordinator sessions (rootcoord, datacoord, ...) are revoked as soon as the new server has its
server ID, through etcd's JSON gateway on loopback.

Its node sessions (datanode-N, querynode-N, ...) block nothing and are left to their TTL: with
the old datanode's session revoked before the new datanode registers, datacoord hands the
channel to the new datanode the moment it registers, before it watches for assignments, and
2.3.5 then misses the assignment until its 5-minute watch timeout (seen here: a restart that
never became ready). Once the old session lapses the new datanode is watching.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.request
from typing import Any, Callable

log = logging.getLogger(__name__)


def _post(etcd_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(etcd_url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def read_sessions(etcd_url: str, prefix: str) -> tuple[int | None, dict[str, tuple[int, str | None]]]:
    """(the server ID counter, {session key: (its ServerID, its lease)}) under `prefix`."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    answer = _post(etcd_url, "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
    counter, sessions = None, {}
    for kv in answer.get("kvs", []):
        key = base64.b64decode(kv["key"]).decode()
        value = base64.b64decode(kv.get("value", "")).decode()
        if key == prefix + "id":
            counter = int(value)
            continue
        try:
            server_id = int(json.loads(value)["ServerID"])
        except (ValueError, KeyError, TypeError):
            continue
        sessions[key] = (server_id, kv.get("lease"))
    return counter, sessions


def is_exclusive(key: str) -> bool:
    """A coordinator's session key ("…/datacoord"); a node's ends in its ID ("…/datanode-3")."""
    role = key.rsplit("/", 1)[-1]
    return not role.rpartition("-")[2].isdigit()


def revoke_dead_sessions(etcd_url: str, prefix: str, alive: Callable[[], bool], timeout: float) -> int:
    """Revoke the leases of coordinator sessions older than the newest server ID; how many were revoked.

    The counter holds the next ID to hand out, so counter - 1 is the newest server's: keys of
    a lower ID belong to a server that is gone. Before the new server takes its ID nothing is
    older than the newest, so this polls until it has one, no session is left, `alive()`
    turns false or `timeout` passes (run it on a thread of its own). Never touches a key of
    the newest ID.
    """
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        try:
            counter, sessions = read_sessions(etcd_url, prefix)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # etcd not up (or gone) yet
            log.debug("etcd at %s not answering: %s", etcd_url, exc)
            time.sleep(0.2)
            continue
        if counter is not None:
            newest = counter - 1
            stale = {lease for key, (server_id, lease) in sessions.items()
                     if server_id < newest and lease and is_exclusive(key)}
            for lease in stale:
                try:
                    _post(etcd_url, "/v3/lease/revoke", {"ID": lease})
                except (OSError, http.client.HTTPException) as exc:  # expired meanwhile, or the server died
                    log.debug("revoking lease %s: %s", lease, exc)
            if stale:
                log.info("revoked %d leases of sessions older than server %d", len(stale), newest)
                return len(stale)
        if not sessions:
            return 0  # no session left to wait for
        time.sleep(0.2)
    return 0
