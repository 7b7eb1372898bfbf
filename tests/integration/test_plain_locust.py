"""locustfiles/milvus_insert.py run by plain `locust`, as a Locust user runs it, against real
embedded Milvus: one process, --processes 2, a master with two workers, and a worker killed
mid-run. The master (or the only process) alone writes acks.jsonl; every batch is acked
exactly once and every acked row is in Milvus."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from harness.milvus_client import MilvusAdmin
from harness.rundir import read_jsonl
from harness.targets.embedded import EmbeddedTarget
from harness.targets.net import free_ports
from harness.targets.protocol import TargetOptions
from harness.watch.events import RunEvents

from waiting import wait_for

pytestmark = pytest.mark.milvus
ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "milvus_insert.py"
COLLECTION = "harness_smoke"


@pytest.fixture(scope="module")
def milvus(milvus_version: str) -> Iterator[str]:
    """One embedded server for the module's tests (each creates the collection afresh)."""
    with EmbeddedTarget(TargetOptions(milvus_version=milvus_version, memory_limit=4 * 2**30)) as server:
        yield server.start(RunEvents()).address


class Locusts:
    """Plain `locust` processes of one test; whatever is still running at its end is killed
    (its process group: --processes forks the workers into it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, name: str = "locust") -> subprocess.Popen:
        log = (self.tmp_path / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args], cwd=self.tmp_path,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen, timeout: float = 300) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"locust did not end in {timeout} s:\n{self.log(proc)}")

    @staticmethod
    def log(proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")[-6000:]  # type: ignore[attr-defined]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


@pytest.fixture
def locusts(tmp_path: Path) -> Iterator[Locusts]:
    procs = Locusts(tmp_path)
    try:
        yield procs
    finally:
        procs.kill_all()


def _load(address: str, acks: Path, *extra: str) -> list[str]:
    return ["--host", f"http://{address}", "--scenario", "smoke", "--set", "total_rows=200000",
            "--acks-file", str(acks), "--stop-timeout", "60", *extra]


def _acked_once(acks: Path, batches: int) -> list[dict]:
    """The ok records of acks.jsonl: each of the `batches` batches exactly once."""
    ok = [a for a in read_jsonl(acks) if a["ok"] and not a.get("stale")]
    assert Counter(a["batch"] for a in ok) == Counter(range(batches)), sorted(a["batch"] for a in ok)
    assert sum(a["rows"] for a in ok) == 200_000
    return ok


def _rows_in_milvus(address: str) -> tuple[int, set[int]]:
    """count(*) of the collection and its distinct primary keys (queried in windows of 10,000)."""
    with MilvusAdmin(address, timeout=60) as admin:
        admin.flush(COLLECTION)
        admin.load_for_queries(COLLECTION, "embedding")
        count = admin.count(COLLECTION)
        keys: set[int] = set()
        for first in range(0, 200_000, 10_000):
            rows = admin.client.query(COLLECTION, filter=f"id >= {first} and id < {first + 10_000}",
                                      output_fields=["id"], consistency_level="Strong", limit=16_384)
            keys.update(r["id"] for r in rows)
        return count, keys


def _insert_row(csv_prefix: Path) -> dict[str, str]:
    with (csv_prefix.parent / f"{csv_prefix.name}_stats.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"].startswith("insert ")]
    assert len(rows) == 1, rows
    return rows[0]


def test_plain_locust_one_process_inserts_200k_rows(milvus, locusts, tmp_path):
    acks, csv_prefix = tmp_path / "acks.jsonl", tmp_path / "out"
    proc = locusts.start("--headless", "-u", "2", "-r", "2", "--run-time", "5m", "--csv", str(csv_prefix),
                         "--html", str(tmp_path / "out.html"), *_load(milvus, acks, "--set", "batch_rows=50000"))
    assert locusts.finish(proc) == 0, locusts.log(proc)
    _acked_once(acks, 4)
    row = _insert_row(csv_prefix)
    assert row["Name"] == "insert 50000 rows" and row["Request Count"] == "4" and row["Failure Count"] == "0"
    assert (tmp_path / "out.html").stat().st_size > 0
    count, keys = _rows_in_milvus(milvus)
    assert count == 200_000 and keys == set(range(200_000))


def test_plain_locust_processes_2_acks_centrally(milvus, locusts, tmp_path):
    acks = tmp_path / "acks.jsonl"
    proc = locusts.start("--headless", "-u", "2", "-r", "2", "--run-time", "5m", "--processes", "2",
                         "--csv", str(tmp_path / "out"), *_load(milvus, acks))
    assert locusts.finish(proc) == 0, locusts.log(proc)
    ok = _acked_once(acks, 20)
    # Both forked workers inserted; their attempts all reached the one file.
    assert len({a["worker"].split(":")[1] for a in ok}) == 2
    assert int(_insert_row(tmp_path / "out")["Request Count"]) == 20
    count, keys = _rows_in_milvus(milvus)
    assert count == 200_000 and keys == set(range(200_000))


def _master_and_workers(locusts: Locusts, tmp_path: Path, address: str, acks: Path,
                        *extra: str) -> tuple[subprocess.Popen, list[subprocess.Popen]]:
    """A master (with the load's options) and two workers given none of them: the master hands
    its custom arguments to the workers."""
    port = free_ports(1)[0]
    master = locusts.start("--headless", "-u", "2", "-r", "2", "--run-time", "4m", "--master",
                           "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                           "--expect-workers", "2", "--csv", str(tmp_path / "out"), *_load(address, acks, *extra),
                           name="master")
    workers = [locusts.start("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), name="worker")
               for _ in range(2)]
    return master, workers


def test_plain_locust_master_and_two_workers(milvus, locusts, tmp_path):
    acks = tmp_path / "acks.jsonl"
    master, workers = _master_and_workers(locusts, tmp_path, milvus, acks)
    assert locusts.finish(master) == 0, locusts.log(master)
    for worker in workers:
        locusts.finish(worker, timeout=60)
    ok = _acked_once(acks, 20)
    assert {int(a["worker"].split(":")[1]) for a in ok} == {w.pid for w in workers}
    count, keys = _rows_in_milvus(milvus)
    assert count == 200_000 and keys == set(range(200_000))


def test_a_worker_killed_mid_run_gives_its_leases_back(milvus, locusts, tmp_path):
    acks = tmp_path / "acks.jsonl"
    # A pause after each insert: the worker is killed holding the batch it leased for its next
    # insert, with none in flight (a kill mid-insert may leave that batch in Milvus twice).
    master, workers = _master_and_workers(locusts, tmp_path, milvus, acks, "--set", "wait_s=2")
    victim, survivor = workers

    def victim_acked() -> bool:
        return any(a["ok"] and a["worker"].split(":")[1] == str(victim.pid)
                   for a in (read_jsonl(acks) if acks.exists() else []))

    wait_for(victim_acked, timeout=240, what="an ack of the worker to kill")
    victim.send_signal(signal.SIGKILL)
    assert locusts.finish(master) == 0, locusts.log(master)
    records = list(read_jsonl(acks))
    lost = [a for a in records if a.get("lease_lost")]
    assert lost, locusts.log(master)
    ok = _acked_once(acks, 20)
    for record in lost:  # each batch the killed worker held was re-sent by the survivor
        resent = next(a for a in ok if a["batch"] == record["batch"])
        assert resent["worker"].split(":")[1] == str(survivor.pid) and resent["t"] > record["t"]
    count, keys = _rows_in_milvus(milvus)
    assert count == sum(a["rows"] for a in ok) == 200_000 and keys == set(range(200_000))



def test_plain_locust_from_the_example_config(milvus, locusts, tmp_path):
    """locustfiles/locust.conf as shipped (headless, its locustfile, scenario smoke), run from
    the repository's root; the command line overrides where it writes and how much."""
    acks, csv_prefix = tmp_path / "acks.jsonl", tmp_path / "out"
    log = (tmp_path / "conf.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "locust", "--config", "locustfiles/locust.conf",
                             "--host", f"http://{milvus}", "--set", "total_rows=100000", "--set", "batch_rows=50000",
                             "--acks-file", str(acks), "--csv", str(csv_prefix), "--html", str(tmp_path / "out.html"),
                             "--run-time", "5m"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    locusts.procs.append(proc)
    assert locusts.finish(proc) == 0, locusts.log(proc)
    ok = [a for a in read_jsonl(acks) if a["ok"]]
    assert sorted(a["batch"] for a in ok) == [0, 1] and {a["rows"] for a in ok} == {50_000}
    assert _insert_row(csv_prefix)["Request Count"] == "2"
