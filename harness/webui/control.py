"""The loopback control channel between the Locust process and `milvus-harness ui` (JSON in, JSON out).

Locust's side is harness/webui/extension.py. Every call carries the session's random token;
this side answers from a ControlApi (the UI session):

    POST /runs               start a run from the form's fields   -> {run_id, config, run_dir}
    POST /runs/<id>/stop     Locust stopped the load of that run
    GET  /state              phase, the current run, a stop request from the stop rules
    GET  /memory[?since=t]   the memory tab's data
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from harness.errors import HarnessError

log = logging.getLogger(__name__)


class ControlApi(Protocol):
    """What the control channel serves."""

    token: str

    def state(self) -> dict[str, Any]: ...

    def memory(self, since: float | None = None) -> dict[str, Any]: ...

    def start_run(self, fields: dict[str, str], users: str | None) -> dict[str, Any]: ...

    def stop_run(self, run_id: str, reason: str) -> dict[str, Any]: ...


class ControlChannel:
    """The channel's HTTP server on a free loopback port, served on a daemon thread until close()."""

    def __init__(self, api: ControlApi) -> None:
        class Handler(_ControlHandler):
            pass

        Handler.session = api
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="ui-control", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _ControlHandler(BaseHTTPRequestHandler):
    """The loopback control channel between Locust and the harness (JSON in, JSON out)."""

    session: ControlApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("control: " + format, *args)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = self.headers.get("X-Harness-Token", "")
        if hmac.compare_digest(given.encode(), self.session.token.encode()):
            return True
        self._reply(403, {"error": "bad token"})
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}") if length else {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._authorized():
            return
        parts = urlsplit(self.path)
        if parts.path == "/state":
            self._reply(200, self.session.state())
        elif parts.path == "/memory":
            since = parse_qs(parts.query).get("since", [None])[0]
            try:
                value = float(since) if since not in (None, "") else None
            except ValueError:
                self._reply(400, {"error": f"since={since!r} is not a number"})
                return
            self._reply(200, self.session.memory(value))
        else:
            self._reply(404, {"error": f"no {parts.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        path = urlsplit(self.path).path
        try:
            body = self._body()
            if path == "/runs":
                self._reply(200, self.session.start_run(body.get("fields", {}), body.get("users")))
            elif path.startswith("/runs/") and path.endswith("/stop"):
                run_id = path[len("/runs/"):-len("/stop")]
                self._reply(202, self.session.stop_run(run_id, str(body.get("reason") or "stopped in the web UI")))
            else:
                self._reply(404, {"error": f"no {path}"})
        except HarnessError as exc:
            self._reply(400, {"error": str(exc)})
        except Exception as exc:  # a bug: its traceback goes to the log, its message to the form
            log.exception("control %s failed", path)
            self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})
