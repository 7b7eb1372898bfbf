"""The embedded target's watcher: a slow /metrics never holds up the memory samples."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.watch.events import RunEvents, Sample
from harness.watch.process import ProcessWatcher
from waiting import wait_for

METRICS = b"# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.25e+08\n"


class SlowMetrics:
    """A /metrics endpoint on loopback that answers only once the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                endpoint.entered.set()
                endpoint.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", str(len(METRICS)))
                self.end_headers()
                self.wfile.write(METRICS)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ThisProcess:
    """WatchedProcess over the test's own process: no cgroup, no limit."""

    isolation = None
    restarts = 0

    def __init__(self, url: str) -> None:
        self.url = url

    def pid(self) -> int | None:
        return os.getpid()

    def memory_group(self) -> None:
        return None

    def metrics_url(self) -> str | None:
        return self.url

    def limit_bytes(self) -> int | None:
        return None


def test_samples_keep_coming_while_a_scrape_hangs() -> None:
    endpoint = SlowMetrics()
    context = RunEvents()
    samples: list[Sample] = []
    context.on_sample(samples.append)
    watcher = ProcessWatcher(ThisProcess(endpoint.url), interval=0.05, metrics_every=1, metrics_timeout=30)
    watcher.start(context)
    try:
        wait_for(endpoint.entered.is_set, timeout=30, what="the first scrape")
        seen = len(samples)
        # the scrape is still hanging (released only below): the samples must not wait for it
        wait_for(lambda: len(samples) >= seen + 5, timeout=20, what="samples while /metrics hangs")
        assert not endpoint.release.is_set()
        assert all(s.memory_bytes and s.rss_bytes and not s.metrics for s in samples)
        endpoint.release.set()
        wait_for(lambda: samples[-1].metrics.get("go_memstats_heap_inuse_bytes") == 1.25e8, timeout=30,
                 what="the scraped figures in the samples")
    finally:
        watcher.stop()
        endpoint.close()
