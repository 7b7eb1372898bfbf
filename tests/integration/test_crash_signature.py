"""Crash signatures from real Milvus: a server that aborts or panics says why in its exit reason."""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path

import psutil
import pytest

from harness.judge.verify import verify_pk_ranges
from harness.load import batches, collection
from harness.load.insert import NumpyInserter
from harness.scenario import model as scenarios
from harness.targets.embedded import EmbeddedTarget
from harness.targets.install import ensure_installed
from harness.targets.protocol import TargetOptions
from harness.rundir import read_jsonl
from harness.watch.events import RunEvents
from waiting import wait_for

pytestmark = pytest.mark.milvus

#: Milvus 2.3.0 aborts in segcore when a query node loads a sealed segment of the seed
#: collection (observed: Assert "unsupported" at .../segcore/InsertRecord.h:330).
ABORTING_VERSION = "2.3.0"


def test_a_segcore_assertion_is_named_in_the_exit_reason(no_leftovers):
    ensure_installed(ABORTING_VERSION)  # downloads it once into the shared cache
    seed = scenarios.load("seed")
    context = RunEvents()
    options = TargetOptions(milvus_version=ABORTING_VERSION, memory_limit=None, restart="never",
                            collection=seed.collection)
    with EmbeddedTarget(options) as target:
        target.start(context)
        address = target.server.address
        collection.create(address, seed)
        inserter = NumpyInserter(address, seed.collection, seed, timeout=60)
        try:
            batch = batches.generate_batch(seed, 0)
            result = inserter.insert(batch)
        finally:
            inserter.close()
        assert result.ok, result
        acked = [{"batch": 0, "first_pk": batch.first_pk, "last_pk": batch.last_pk, "rows": result.rows}]
        # Loading the flushed segment is what aborts; the call itself fails once the server is gone.
        threading.Thread(target=verify_pk_ranges, args=(address, seed.collection, acked, 120.0),
                         daemon=True).start()
        wait_for(lambda: any(e.type == "Exited" for e in context.events), timeout=240,
                 what="the 2.3.0 server to die while loading the sealed segment")
    exited = next(e for e in context.events if e.type == "Exited")
    assert exited.data["exit_code"] < 0 and "SIGABRT" in exited.detail
    # The assertion and where it fired, not just the signal; and what the server was doing.
    assert 'assertion "unsupported" in segcore InsertRecord (InsertRecord.h:330)' in exited.detail, exited.detail
    assert "(*segmentLoader).Load" in exited.detail
    assert exited.data["crash"]["kind"] == "assertion"


def _acked(report_dir: Path) -> bool:
    return any(a.get("ok") for run in report_dir.glob("*/acks.jsonl") for a in read_jsonl(run))


def test_a_go_panic_is_named_in_the_runs_reason(milvus_version, harness_cli, tmp_path):
    """Milvus 2.3.x panics when SIGTERM stops it: on shutdown cmd/roles (*MilvusRoles).Run closes
    the etcd client, whose Close returns "context canceled", and util/dependency/kv CloseEtcdClient
    panics on any error (kv_client_handler.go:38). The test stops the server as kubelet or an
    operator would, SIGTERM to its pid, while rows are inserted; with --restart never the run ends
    there, and its reason carries that panic and its first Milvus frame in one line."""
    report_dir = tmp_path / "reports"
    proc = harness_cli.start("run", "--scenario", "smoke", "--milvus-version", milvus_version, "--restart", "never",
                             "--set", "total_rows=3000000", "--report-dir", str(report_dir))
    wait_for(lambda: _acked(report_dir) or proc.poll() is not None, 300, "the first acked rows")
    assert proc.poll() is None, proc.communicate()
    [server] = [c for c in psutil.Process(proc.pid).children(recursive=True)
                if c.cmdline()[-2:] == ["run", "standalone"]]
    server.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out + err
    [run_dir] = report_dir.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    reason = summary["reasons"][0]
    assert "\n" not in reason and reason.startswith("standalone exited"), reason
    assert ("panic: context canceled in util/dependency/kv CloseEtcdClient (kv_client_handler.go:38) "
            "<- cmd/roles (*MilvusRoles).Run (roles.go:") in reason, reason
    exited = next(e for e in read_jsonl(run_dir / "events.jsonl") if e["type"] == "Exited")
    assert exited["data"]["crash"]["kind"] == "panic" and exited["data"]["crash"]["message"] == "context canceled"


def test_a_server_that_panics_while_starting_names_the_panic_in_the_bring_up_error(milvus_version, harness_cli,
                                                                                    tmp_path):
    """The same panic while the harness still waits for the server: its proxy listens on another
    port than the one the harness chose (--milvus-config proxy.port), so the server never answers
    there; once its log says the proxy started, SIGTERM makes it panic. The run cannot test
    (INCONCLUSIVE, exit 125) and its one-line reason is the panic, not just "exited"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        elsewhere = probe.getsockname()[1]
    report_dir = tmp_path / "reports"
    proc = harness_cli.start("run", "--scenario", "smoke", "--milvus-version", milvus_version,
                             "--milvus-config", f"proxy.port={elsewhere}", "--report-dir", str(report_dir))

    def proxy_started() -> bool:
        return any("Proxy successfully started" in log.read_text(errors="replace")
                   for log in report_dir.glob("*/logs/milvus-stdout.log"))

    wait_for(lambda: proxy_started() or proc.poll() is not None, 300, "the server's proxy to start")
    assert proc.poll() is None, proc.communicate()
    [server] = [c for c in psutil.Process(proc.pid).children(recursive=True)
                if c.cmdline()[-2:] == ["run", "standalone"]]
    server.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 125, out + err
    [run_dir] = report_dir.iterdir()
    [reason] = json.loads((run_dir / "summary.json").read_text())["reasons"]
    assert "\n" not in reason
    assert reason.startswith(f"milvus {milvus_version} exited while starting (signal SIGABRT): panic: context canceled "
                             "in util/dependency/kv CloseEtcdClient (kv_client_handler.go:38) <- cmd/roles"), reason
