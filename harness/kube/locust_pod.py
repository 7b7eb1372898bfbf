"""The in-cluster Locust master's entry point: Locust as a child, its files and a stop switch over HTTP.

    python -m harness.kube.locust_pod --dir /data --port 8090 -- python -m locust -f ... --master ...

The harness reads this through the API server's pod proxy, so it needs neither `kubectl exec`
and a tar in the image (`kubectl cp`) nor a port of the node:
- GET /status: {"running": bool, "returncode": int or null} of Locust;
- POST /stop: SIGINT to Locust (a headless master then stops its workers, writes its CSV and
  HTML report and exits, as on Ctrl-C);
- GET /files/: the names in --dir (JSON); GET /files/NAME: a file; GET /files/NAME/N: the
  file from byte N (the pod proxy passes a path, not a query string).
It keeps serving after Locust has exited, until the pod is deleted (SIGTERM, passed on to a
Locust still running).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

#: A file of the data directory: a plain name, no path, no dot file.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: How long SIGTERM waits for Locust before the pod's own grace period takes over.
TERM_WAIT_S = 20.0


class LocustChild:
    """The Locust process this pod runs, with its output on the container's log."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)

    def status(self) -> dict[str, Any]:
        code = self.proc.poll()
        return {"running": code is None, "returncode": code}

    def signal(self, signum: int) -> bool:
        """Send a signal if Locust still runs; True if it was sent."""
        if self.proc.poll() is not None:
            return False
        self.proc.send_signal(signum)
        return True


def make_server(child: LocustChild, directory: Path, host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP server of /status, /stop and /files on host:port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # the container log is Locust's
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(urlsplit(self.path).path)
            if path == "/status":
                return self._json(200, child.status())
            if path == "/files/":
                return self._json(200, sorted(p.name for p in directory.iterdir() if p.is_file()))
            if path.startswith("/files/"):
                return self._file(*path.removeprefix("/files/").split("/", 1))
            return self._json(404, {"error": f"no route {path}"})

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/stop":
                return self._json(404, {"error": f"no route {self.path}"})
            return self._json(202, {"signalled": child.signal(signal.SIGINT), **child.status()})

        def _file(self, name: str, offset_text: str = "0") -> None:
            path = directory / name
            if not _NAME.match(name) or not path.is_file():
                return self._json(404, {"error": f"no file {name!r}"})
            if not offset_text.isdigit():
                return self._json(400, {"error": "the offset must be a whole number of bytes"})
            offset = int(offset_text)
            with path.open("rb") as handle:
                handle.seek(offset)
                self._send(200, handle.read(), "application/octet-stream")

        def _json(self, code: int, data: Any) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Run Locust (the command after --) and serve until SIGTERM; returns Locust's exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python -m harness.kube.locust_pod [--dir D] [--port P] [--bind H] -- LOCUST COMMAND...",
              file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m harness.kube.locust_pod")
    parser.add_argument("--dir", default="/data", help="the directory whose files are served")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (the pod's)")
    args = parser.parse_args(argv[:split])
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    child = LocustChild(argv[split + 1:])
    server = make_server(child, directory, args.bind, args.port)
    done = threading.Event()

    def terminate(signum: int, _frame: Any) -> None:
        child.signal(signal.SIGTERM)
        done.set()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    while not done.wait(1.0):  # a timed wait lets the signal handlers run
        pass
    try:
        child.proc.wait(timeout=TERM_WAIT_S)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()
    server.shutdown()
    server.server_close()
    return child.proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
