"""Fixtures of the web UI tests: `milvus-harness ui` as a real process, and headless Chromium.

Every server a test starts is stopped with Ctrl-C (SIGINT to its pid) when the test ends,
pass or fail; whatever it started that is still alive afterwards (Locust, Milvus) is killed
by pid, and the test fails if anything had to be.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("MILVUS_HARNESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class UiServer:
    """One `milvus-harness ui` process and where it writes."""

    proc: subprocess.Popen
    url: str
    report_dir: Path
    out: Path
    err: Path
    descendants: set[int] = field(default_factory=set)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def runs(self) -> list[Path]:
        return sorted(p for p in self.report_dir.iterdir() if p.is_dir()) if self.report_dir.exists() else []

    def note_descendants(self) -> None:
        try:
            self.descendants.update(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            pass

    def interrupt(self, timeout: float = 180) -> int:
        """Ctrl-C, as a user quits it; returns its exit code."""
        self.note_descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def alive_descendants(self) -> list[int]:
        alive = []
        for pid in self.descendants:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[Callable[..., UiServer]]:
    """Starts `milvus-harness ui ARGS` and waits until its web UI answers."""
    servers: list[UiServer] = []

    def start(*args: str, web_host: str = "127.0.0.1", timeout: float = 300) -> UiServer:
        port = free_port("0.0.0.0" if web_host == "0.0.0.0" else "127.0.0.1")
        report_dir = tmp_path / f"reports-{len(servers)}"
        out, err = tmp_path / f"ui-{len(servers)}.out", tmp_path / f"ui-{len(servers)}.err"
        argv = [sys.executable, "-m", "harness.cli", "ui", "--report-dir", str(report_dir),
                "--web-host", web_host, "--web-port", str(port), *args]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=tmp_path)
        server = UiServer(proc, f"http://127.0.0.1:{port}", report_dir, out, err)
        servers.append(server)
        deadline = time.monotonic() + timeout
        while "Locust web UI:" not in server.stdout():
            server.note_descendants()
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"milvus-harness ui did not come up (exit {proc.poll()}):\n"
                            f"{server.stdout()}\n{server.stderr()}")
            time.sleep(0.25)
        server.note_descendants()
        return server

    yield start
    leftovers = []
    for server in servers:
        try:
            server.interrupt()
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        for pid in server.alive_descendants():
            leftovers.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not leftovers, f"processes left running by milvus-harness ui (killed now): {leftovers}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ at the repository's root (git-ignored): screenshots to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()
