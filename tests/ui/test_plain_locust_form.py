"""Plain `locust -f locustfiles/milvus_insert.py` with its web UI, in headless Chromium: the start
form shows the locustfile's own options, and a bad value is refused with its message before
any test starts (no Milvus is needed: nothing may reach it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.targets.net import free_ports

pytestmark = pytest.mark.ui
LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "milvus_insert.py"


@pytest.fixture
def plain_locust(tmp_path: Path):
    """`locust -f locustfiles/milvus_insert.py` with its web UI on a free loopback port; stopped
    (SIGTERM, then SIGKILL, by its pid) when the test ends."""
    port = free_ports(1)[0]
    log = (tmp_path / "locust.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", "127.0.0.1",
                             "--web-port", str(port), "--host", "http://127.0.0.1:1", "--scenario", "smoke",
                             "--acks-file", str(tmp_path / "acks.jsonl")],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while True:
        try:
            opener.open(url + "/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"locust's web UI did not come up:\n{(tmp_path / 'locust.log').read_text()}")
            time.sleep(0.25)
    try:
        yield url, tmp_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def test_the_start_form_shows_the_options_and_refuses_a_bad_value(plain_locust, browser, artifacts):
    url, tmp_path = plain_locust
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url + "/")
        page.get_by_text("Custom parameters").click()
        assert page.locator('input[name="scenario"]').input_value() == "smoke"
        for name in ("set", "user", "dbName", "tlsCa"):
            assert page.locator(f'input[name="{name}"]').count() == 1, name
        for name in ("password", "token"):  # secrets are masked
            assert page.locator(f'input[name="{name}"]').get_attribute("type") == "password", name
        assert page.locator('[name="collectionMode"]').count() == 1
        assert page.locator('input[name="acksFile"]').count() == 0  # where the master writes: not per test
        page.screenshot(path=str(artifacts / "plain-locust-form.png"), full_page=True)

        page.locator('input[name="set"]').fill("total_rows=abc")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("total_rows='abc' is not a valid int").wait_for(timeout=15_000)

        page.locator('input[name="set"]').fill("total_rows=50000")
        page.locator('input[name="scenario"]').fill("no-such-scenario")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("unknown scenario 'no-such-scenario'").wait_for(timeout=15_000)
        page.screenshot(path=str(artifacts / "plain-locust-form-refused.png"), full_page=True)
    finally:
        page.close()
    # Refused before any test started: nothing was acked, no attempt was made.
    assert not (tmp_path / "acks.jsonl").exists()
    log = (tmp_path / "locust.log").read_text()
    assert "start refused: total_rows='abc' is not a valid int" in log and "Ramping to" not in log
