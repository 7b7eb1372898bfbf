"""The web UI in real headless Chromium against real embedded Milvus: fill the form, watch
the memory tab grow, stop, find the report linked; then a second run on a fresh collection;
then Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import re
import time

import pytest

from harness.rundir import read_jsonl

pytestmark = [pytest.mark.ui, pytest.mark.milvus]


def _panel(page):
    return page.locator("#harness-memory-panel")


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _samples_shown(page) -> int:
    return int(_panel(page).get_attribute("data-samples") or 0)


def _chart_points(page) -> list[tuple[float, float]]:
    points = page.locator('polyline[data-series="standalone"]').get_attribute("points") or ""
    return [tuple(map(float, p.split(","))) for p in points.split()]


def test_start_watch_stop_report_and_start_again(no_leftovers, milvus_version, ui_server, browser, artifacts):
    server = ui_server("--scenario", "smoke", "--milvus-version", milvus_version)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server.url + "/")
        # The target's facts above the start form.
        facts = page.locator(".mh-form-facts")
        facts.wait_for(timeout=15_000)
        assert f"Milvus {milvus_version}" in facts.inner_text() and "memory limit 4.00 GiB" in facts.inner_text()

        # The scenario's fields are Locust custom parameters; a bad one refuses the start.
        page.get_by_text("Custom parameters").click()
        assert page.locator('input[name="totalRows"]').input_value() == "200000"
        # The insert locustfile's own options are the harness's to give here: not in the form.
        for name in ("scenario", "set", "user", "password", "token", "dbName", "tlsCa"):
            assert page.locator(f'input[name="{name}"]').count() == 1 and not page.locator(
                f'input[name="{name}"]').is_visible(), name
        page.locator('input[name="shards"]').fill("99")
        page.get_by_role("button", name="Start").click()
        page.get_by_text("shards=99 is out of range: 1 to 16").wait_for(timeout=15_000)
        assert not server.runs(), "a refused start made a run directory"

        page.locator('input[name="shards"]').fill("1")
        page.locator('input[name="totalRows"]').fill("3000000")  # far more than the test waits for
        page.get_by_role("button", name="Start").click()
        page.get_by_role("tab", name="Milvus memory").click()
        panel = _panel(page)
        panel.wait_for(timeout=30_000)

        # Samples arrive and the chart grows with them.
        _wait_for(lambda: _samples_shown(page) >= 4, 60, "the first samples in the tab")
        first_count, first_points = _samples_shown(page), _chart_points(page)
        first_rows = int(page.locator("#harness-rows-acked").inner_text().split()[0].replace(",", ""))
        _wait_for(lambda: _samples_shown(page) >= first_count + 5, 60, "more samples")
        later_points = _chart_points(page)
        assert len(later_points) > len(first_points) >= 3
        assert later_points[-1][0] > first_points[-1][0]  # the line reaches further right
        later_rows = int(page.locator("#harness-rows-acked").inner_text().split()[0].replace(",", ""))
        assert later_rows > first_rows
        run_id = panel.get_attribute("data-run-id")
        assert run_id and panel.get_attribute("data-final") == "false"
        assert "so far" in page.locator("#harness-verdict").inner_text()
        assert "limit 4.00 GiB" in panel.inner_text()
        page.screenshot(path=str(artifacts / "ui-memory-tab.png"), full_page=True)

        # Stop: the report is written as headless and linked in the tab.
        page.get_by_role("button", name="Stop").click()
        link = page.locator("#harness-report-link")
        link.wait_for(timeout=180_000)
        run_dir = server.report_dir / run_id
        summary = json.loads((run_dir / "summary.json").read_text())
        for name in ("run.json", "samples.jsonl", "events.jsonl", "acks.jsonl", "report.html", "report.md",
                     "junit.xml", "locust_stats.csv", "locust.html", "logs/locust.log"):
            assert (run_dir / name).exists(), name
        assert summary["verdict"] == "PASS" and summary["status"] == "FINISHED"
        assert summary["rows"]["acked"] > 0 and summary["rows"]["verified"] == summary["rows"]["acked"]
        stopped = [e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "LoadStopped"]
        assert "Stop button" in stopped[0]["detail"]
        assert page.locator("#harness-verdict").inner_text().strip() == "PASS"
        href = link.get_attribute("href")
        assert href.endswith(f"{run_id}/report.html")
        response = page.request.get(server.url + "/" + href.lstrip("./"))
        assert response.ok and run_id in response.text()
        page.screenshot(path=str(artifacts / "ui-memory-tab-finished.png"), full_page=True)

        # A new run from the same page, on a fresh server and collection; it ends by itself.
        page.get_by_role("button", name="New").click()
        dialog = page.locator(".MuiModal-root")
        dialog.get_by_text("Custom parameters").click()
        dialog.locator('input[name="totalRows"]').fill("50000")
        dialog.get_by_role("button", name="Start").click()
        page.get_by_role("tab", name="Milvus memory").click()
        _wait_for(lambda: panel.get_attribute("data-run-id") not in (None, "", run_id), 120, "the second run")
        second = panel.get_attribute("data-run-id")
        _wait_for(lambda: panel.get_attribute("data-final") == "true", 240, "the second run's verdict")
        assert re.search(rf"{second}/report\.html$", page.locator("#harness-report-link").get_attribute("href"))
        second_summary = json.loads((server.report_dir / second / "summary.json").read_text())
        assert second_summary["rows"] == {**second_summary["rows"], "planned": 50_000, "acked": 50_000,
                                          "verified": 50_000, "lost": 0}
        assert "every batch settled" in panel.inner_text()
        assert [p.name for p in server.runs()] == sorted([run_id, second])
        assert not errors, errors
    except BaseException:
        page.screenshot(path=str(artifacts / "ui-failure.png"), full_page=True)  # what the browser showed
        raise
    finally:
        page.close()

    # Ctrl-C: Locust and Milvus end, and the command says so.
    assert server.interrupt() == 0, server.stdout() + server.stderr()
    assert "nothing left running" in server.stdout()
    assert not server.alive_descendants()
