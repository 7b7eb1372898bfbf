"""`--target external` loads only this machine unless --allow-remote: refused before any lookup.

The CLI test runs in a network namespace that has only loopback (`unshare -n`), so even a
harness that tried to connect could not send anything off the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.targets.external import check_remote
from harness.targets.protocol import TargetOptions

REPO = Path(__file__).resolve().parents[2]


def _isolated_network_available() -> str | None:
    """Why `unshare -n` cannot be used here, or None when it can."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here: {probe.stderr.strip()}"
    return None


def test_remote_uri_is_refused_inside_a_loopback_only_namespace(tmp_path: Path) -> None:
    reason = _isolated_network_available()
    if reason:
        pytest.skip(reason)
    reports = tmp_path / "reports"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    proc = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-m", "harness.cli", "run", "--target", "external",
         "--uri", "http://10.1.2.3:19530", "--report-dir", str(reports)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    elapsed = time.monotonic() - began
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert lines == ["milvus-harness: error: --uri 'http://10.1.2.3:19530' is not on this machine (allowed "
                     "without --allow-remote: 127.0.0.1, ::1, localhost); add --allow-remote to load a remote "
                     "Milvus"]
    assert not reports.exists()  # refused before anything was created
    # Before the check the harness waited 30 s for an answer in such a namespace.
    assert elapsed < 20, f"took {elapsed:.1f} s: the harness tried to reach the address"


def test_refusal_comes_before_any_lookup_or_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    tried: list[object] = []

    def no_network(*args: object, **kwargs: object) -> None:
        tried.append(args)
        raise AssertionError(f"network use before the refusal: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for uri in ("http://10.1.2.3:19530", "milvus.example.com:19530", "http://[2001:db8::1]:19530"):
        assert main(["run", "--target", "external", "--uri", uri, "--report-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--uri {uri!r} is not on this machine" in err
    assert tried == [] and not (tmp_path / "r").exists()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:19530", "127.9.9.9:1", "http://[::1]:19530",
                                 "localhost", "http://LOCALHOST.:19530"])
def test_loopback_uris_need_no_permission(uri: str) -> None:
    check_remote(TargetOptions(target="external", uri=uri))


@pytest.mark.parametrize("uri", ["http://10.1.2.3:19530", "http://0.0.0.0:19530", "http://[::]:19530",
                                 "milvus:19530", "localhost.example.com"])
def test_remote_uris_need_allow_remote(uri: str) -> None:
    with pytest.raises(UsageError, match="is not on this machine"):
        check_remote(TargetOptions(target="external", uri=uri))
    assert check_remote(TargetOptions(target="external", uri=uri, allow_remote=True))[1] > 0


def test_external_without_uri_is_refused_early(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--target", "external", "--report-dir", str(tmp_path / "r")]) == 2
    assert "--target external needs --uri" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
