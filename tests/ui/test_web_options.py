"""Where the web UI listens and how it is guarded: the non-loopback warning, bad options, and
the warning printed by the real command before a web UI that other machines can reach."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from harness.errors import UsageError
from harness.webui.options import WebOptions, bind_warning, is_loopback


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
