"""Where the web UI listens and how it is guarded: the non-loopback warning, bad options, and
the warning printed by the real command before a web UI that other machines can reach."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading

import pytest

from harness.errors import TargetError, UsageError
from harness.run.lifecycle import RunOptions
from harness.scenario.model import load
from harness.targets.net import free_ports, port_open
from harness.webui.options import WebOptions, bind_warning, hold_port, is_loopback
from harness.webui.web_locust import WebLocust


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_warning(host):
    assert is_loopback(host) and bind_warning(WebOptions(host=host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.20", "milvus-box.example.com"])
def test_other_addresses_without_a_password_get_one_line(host):
    warning = bind_warning(WebOptions(host=host, port=8089))
    assert warning is not None and "\n" not in warning
    assert "reachable from other machines" in warning and "--web-login" in warning and "--web-auth" in warning
    assert bind_warning(WebOptions(host=host, login="me:pw")) is None
    assert bind_warning(WebOptions(host=host, auth="me:pw")) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"login": "me"}, "--web-login 'me' is not USER:PASSWORD"),
    ({"auth": ":pw"}, "--web-auth ':pw' is not USER:PASSWORD"),
    ({"login": "a:b", "auth": "c:d"}, "exclude each other"),
    ({"port": 0}, "--web-port 0 is out of range"),
])
def test_bad_web_options_are_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        WebOptions(**kwargs)


@pytest.mark.parametrize("args, message", [
    (["--web-auth", "nopassword"], "--web-auth 'nopassword' is not USER:PASSWORD"),
    (["--web-port", "70000"], "--web-port 70000 is out of range"),
    (["--set", "shards=99"], "shards=99 is out of range"),
])
def test_the_command_refuses_bad_input_before_starting_anything(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "harness.cli", "ui", "--scenario", "smoke",
                             "--report-dir", str(tmp_path / "reports"), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()


@pytest.mark.ui
@pytest.mark.milvus
def test_all_interfaces_without_a_password_prints_the_warning(no_leftovers, milvus_version, ui_server):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version, web_host="0.0.0.0")
    warnings = [line for line in server.stderr().splitlines() if "warning" in line]
    assert len(warnings) == 1, server.stderr()
    assert warnings[0].startswith("milvus-harness: warning: the web UI on 0.0.0.0:")
    assert "--web-login" in warnings[0]
    # ... and Ctrl-C then ends it cleanly, with no run in progress.
    assert server.interrupt() == 0, server.stdout() + server.stderr()
    assert not server.alive_descendants() and not server.runs()


def test_a_taken_web_port_is_refused_before_milvus_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "harness.cli", "ui", "--scenario", "smoke",
                                 "--report-dir", str(tmp_path / "reports"), "--web-port", str(port)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the web UI cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "starting milvus" not in result.stdout


def test_the_held_web_port_listens_and_is_never_chosen_as_a_free_port():
    port = free_ports(1)[0]
    held = hold_port(WebOptions(port=port))
    try:
        assert port_open("127.0.0.1", port)  # a taken port is refused to anyone else, Milvus included
        assert port not in free_ports(2000)
    finally:
        held.close()
    assert not port_open("127.0.0.1", port)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"404 page not found")

    def log_message(self, *args):
        pass


def test_a_404_from_another_server_on_the_web_port_is_not_a_ready_web_ui(tmp_path):
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    web = WebOptions(port=other.server_address[1])
    locust = WebLocust(tmp_path / "locust.log")
    try:
        locust.start("http://127.0.0.1:9/", "token", web, load("smoke"), RunOptions(scenario="smoke", report_dir=tmp_path))
        with pytest.raises(TargetError, match="Locust's web UI did not start on"):
            locust.wait_ready(web, 60)
    finally:
        locust.stop()
        other.shutdown()
        other.server_close()
