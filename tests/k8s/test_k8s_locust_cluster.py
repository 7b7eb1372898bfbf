"""In-cluster Locust (`run --target kind --locust in-cluster`) against the Kubernetes-API stand-in.

The stand-in API server (k8s_fakes + k8s_objects) records every object created and deleted and
"schedules" pods at once; the master pod's proxy forwards to a real harness.kube.locust_pod
running here on loopback, whose child is real Locust with tests/k8s/locustfile_acks.py (the
real locustfiles/milvus_insert.py is another branch's; no Milvus runs here). So the objects and
their arguments, the copy of acks, CSV and HTML through the pod proxy, the stop switch and the
clean-up on the end, a failure and a real SIGINT are checked; the pods' own behaviour in a real
cluster is not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.cli import main
from harness.errors import TargetError
from harness.kube import contexts
from harness.kube import locust_manifests as manifests
from harness.kube.locust_manifests import LocustPlan
from harness.rundir import RunDir, read_jsonl
from harness.run.locust_cluster import InClusterLocust, start_in_cluster
from k8s_fakes import write_kubeconfig
from locust_master import LocalMaster
from waiting import wait_for

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CTX = "kind-milvus-harness"
NS = "loadtest"


@pytest.fixture
def kube(tmp_path, monkeypatch, fake_api):
    path = write_kubeconfig(tmp_path / "kubeconfig", {CTX: fake_api.url})
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def acking_locust(data: Path, run_time: str | None) -> list[str]:
    """Real Locust with tests/k8s/locustfile_acks.py, writing into `data` as the master pod does."""
    return [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile_acks.py"), "--headless", "-u", "1", "-r", "1",
            "--csv", str(data / "locust"), "--html", str(data / "locust.html"), "--acks-file", str(data / "acks.jsonl"),
            *(["--run-time", run_time] if run_time else [])]


@pytest.fixture
def start_master(tmp_path, fake_api) -> Iterator[Any]:
    made: list[LocalMaster] = []

    def start(run_time: str | None = None) -> LocalMaster:
        data = tmp_path / "data"
        master = LocalMaster(data, acking_locust(data, run_time), tmp_path / "master.log")
        made.append(master)
        fake_api.pod_backends[manifests.MASTER] = master.port
        return master

    try:
        yield start
    finally:
        for master in made:
            master.stop()


@pytest.fixture
def run_dir(tmp_path) -> RunDir:
    return RunDir.create(tmp_path / "reports", "20261129-231500-seed-v2.6.15")


def plan(**fields: Any) -> LocustPlan:
    defaults = dict(workers=3, users=6, scenario_file="smoke.toml", scenario_toml='total_rows = 200000\n',
                    overrides=(("batch_rows", "10000"),), run_time_s=90, run_id="20261129-231500-seed-v2.6.15")
    return LocustPlan(**{**defaults, **fields})


def in_cluster(run_dir: RunDir, **fields: Any) -> InClusterLocust:
    return InClusterLocust(contexts.api_client(CTX), NS, plan(**fields), run_dir, poll_interval=0.2,
                           ready_timeout=60, request_timeout=10)


def locust_objects(fake_api) -> list[str]:
    """What of in-cluster Locust is in the stand-in now."""
    pods = [p["metadata"]["name"] for p in fake_api.pods if p["metadata"]["labels"].get(manifests.NAME_LABEL) == "locust"]
    return sorted([*pods, *(name for (_, _, name) in fake_api.objects),
                   *(name for (_, name) in fake_api.configmaps if name == manifests.SCENARIO_CONFIGMAP)])


# --- deploy, follow, copy, delete ----------------------------------------------------------------


def test_deploy_follows_the_run_copies_its_files_and_deletes_what_it_created(kube, fake_api, start_master, run_dir):
    master = start_master(run_time="4s")
    fake_api.container_logs[(manifests.MASTER, "locust", False)] = "All users spawned: {\"AckingUser\": 6}\n"
    locust = in_cluster(run_dir)
    try:
        locust.deploy()
        created = [(kind, name) for verb, kind, ns, name, _ in fake_api.object_log if verb == "create"]
        assert created == [("ConfigMap", "locust-scenario"), ("Service", "locust-master"), ("Pod", "locust-master"),
                           ("Deployment", "locust-worker")]
        assert {ns for _, _, ns, _, _ in fake_api.object_log} == {NS}
        bodies = {kind: body for verb, kind, _, _, body in fake_api.object_log}
        assert bodies["ConfigMap"]["data"] == {"smoke.toml": "total_rows = 200000\n"}
        args = bodies["Pod"]["spec"]["containers"][0]["args"]
        assert bodies["Pod"]["spec"]["restartPolicy"] == "Never"
        assert bodies["Pod"]["spec"]["containers"][0]["command"][:3] == ["python", "-m", "harness.kube.locust_pod"]
        for flag, value in (("-u", "6"), ("--expect-workers", "3"), ("--run-time", "90s"), ("--set", "batch_rows=10000"),
                            ("--scenario", "/config/smoke.toml"), ("--host", "http://milvus:19530"),
                            ("--collection-mode", "reuse"), ("--acks-file", "/data/acks.jsonl"),
                            ("--csv", "/data/locust"), ("--html", "/data/locust.html")):
            assert args[args.index(flag) + 1] == value, flag
        assert "--headless" in args and "--master" in args
        worker = bodies["Deployment"]["spec"]
        assert worker["replicas"] == 3
        worker_args = worker["template"]["spec"]["containers"][0]["args"]
        assert worker_args[worker_args.index("--master-host") + 1] == "locust-master"
        assert "--acks-file" not in worker_args and "--set" in worker_args  # the master alone writes acks
        assert len([p for p in fake_api.pods if p["metadata"]["labels"].get(manifests.COMPONENT_LABEL) == "worker"]) == 3

        seen_while_running: list[int] = []
        while locust.running():
            seen_while_running.append(len(list(read_jsonl(run_dir.acks))))
        assert max(seen_while_running) > 0  # acks arrive during the load, not only at the end
        assert locust.returncode == 0
    finally:
        locust.stop(timeout=30)
    assert run_dir.acks.read_bytes() == (master.dir / "acks.jsonl").read_bytes()
    acks = list(read_jsonl(run_dir.acks))
    assert len(acks) >= 10 and len({a["batch"] for a in acks}) == len(acks)  # copied once each
    stats = (run_dir.path / "locust_stats.csv").read_text()
    assert "insert,batch" in stats
    assert run_dir.locust_html.read_text().lstrip().lower().startswith("<!doctype html")
    assert (run_dir.logs / "locust.log").read_text() == "All users spawned: {\"AckingUser\": 6}\n"
    deleted = [(kind, name) for verb, kind, _, name, _ in fake_api.object_log if verb == "delete"]
    assert deleted == [("Deployment", "locust-worker"), ("Pod", "locust-master"), ("Service", "locust-master"),
                       ("ConfigMap", "locust-scenario")]
    assert locust_objects(fake_api) == [] and locust.left == []  # deleted, and the client saw it


def test_stop_stops_the_master_through_its_switch_and_keeps_its_report(kube, fake_api, start_master, run_dir):
    master = start_master(run_time=None)  # runs until stopped
    locust = in_cluster(run_dir)
    try:
        locust.deploy()
        wait_for(lambda: locust.running() and run_dir.acks.exists() and run_dir.acks.stat().st_size > 0, 60,
                 "the first acks copied")
    finally:
        locust.stop(timeout=60)
    assert any(r.startswith("POST ") and r.endswith("/proxy/stop") for r in fake_api.requests)
    assert master.proc.poll() is None  # the pod's server outlives Locust, as in the cluster
    status = json.loads(_get(master.port, "/status"))
    assert status == {"running": False, "returncode": 0}  # Locust ended on SIGINT, cleanly
    assert run_dir.locust_html.exists() and (run_dir.path / "locust_stats.csv").exists()
    assert run_dir.acks.read_bytes() == (master.dir / "acks.jsonl").read_bytes()
    assert locust_objects(fake_api) == [] and locust.left == []  # deleted, and the client saw it


def test_a_master_that_dies_mid_run_ends_the_load_and_everything_is_deleted(kube, fake_api, start_master, run_dir):
    master = start_master(run_time=None)
    locust = in_cluster(run_dir)
    try:
        locust.deploy()
        wait_for(lambda: locust.running() and run_dir.acks.exists() and run_dir.acks.stat().st_size > 0, 60,
                 "the first acks copied")
        master.stop()  # its container ends; with restartPolicy Never the pod is Failed
        pod = next(p for p in fake_api.pods if p["metadata"]["name"] == manifests.MASTER)
        pod["status"]["phase"] = "Failed"
        wait_for(lambda: not locust.running(), 30, "the load seen ended")
    finally:
        locust.stop(timeout=5)
    assert len(list(read_jsonl(run_dir.acks))) > 0  # what was copied before stays for the verification
    assert locust_objects(fake_api) == [] and locust.left == []  # deleted, and the client saw it


def _get(port: int, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return answer.read()


def test_the_master_serves_only_its_own_files(start_master, fake_api):
    import urllib.error

    master = start_master(run_time="1s")
    wait_for(lambda: (master.dir / "acks.jsonl").exists(), 60, "the first ack")
    (master.dir.parent / "secret.txt").write_text("not served")
    (master.dir / ".acks.jsonl.tmp").write_text("half written")  # dot files are never served
    for path in ("/files/..%2Fsecret.txt", "/files/../secret.txt", "/files/.acks.jsonl.tmp", "/nothing"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(master.port, path)
        assert refused.value.code == 404, path
    whole = _get(master.port, "/files/acks.jsonl")
    assert _get(master.port, "/files/acks.jsonl/10").startswith(whole[10:])  # the file only grows


def test_a_pod_that_cannot_pull_its_image_fails_fast_and_everything_is_deleted(kube, fake_api, standins, run_dir,
                                                                              caplog):
    from harness.run.lifecycle import RunOptions, prepare
    from harness.targets.protocol import TargetOptions

    standins.on("docker", "build")
    standins.on("kind", "load", "docker-image")
    fake_api.waiting_for["worker"] = ("ErrImagePull", 'failed to pull "docker.io/library/milvus-harness:dev": not found')
    options = RunOptions(scenario="smoke", workers=2, users=2, locust="in-cluster",
                         target=TargetOptions(target="kind", namespace=NS, release="loadtest"))
    scenario, target = prepare(options)
    with pytest.raises(TargetError) as failed:
        start_in_cluster(run_dir, options, scenario, target)
    assert "ErrImagePull" in str(failed.value) and "kind load docker-image milvus-harness:dev" in str(failed.value)
    assert standins.calls() == [
        ["docker", "build", "-f", str(REPO / "k8s" / "locust" / "Dockerfile"), "-t", "milvus-harness:dev", str(REPO)],
        ["kind", "load", "docker-image", "milvus-harness:dev", "--name", "milvus-harness"]]
    created = {(kind, name): body for verb, kind, _, name, body in fake_api.object_log if verb == "create"}
    assert len(created) == 4
    assert "--host" in (args := created[("Pod", "locust-master")]["spec"]["containers"][0]["args"])
    assert args[args.index("--host") + 1] == "http://loadtest-milvus:19530"  # the chart's milvus.fullname
    assert created[("ConfigMap", "locust-scenario")]["data"] == {
        "smoke.toml": (REPO / "harness" / "scenario" / "builtin" / "smoke.toml").read_text()}
    assert locust_objects(fake_api) == [] and "could not delete" not in caplog.text


def test_a_given_image_is_loaded_not_built(kube, fake_api, standins, start_master, run_dir):
    from harness.run.lifecycle import RunOptions, prepare
    from harness.targets.protocol import TargetOptions

    start_master(run_time=None)
    standins.on("kind", "load", "docker-image")
    options = RunOptions(scenario="smoke", workers=1, users=1, locust="in-cluster", locust_image="reg.local/locust:7",
                         target=TargetOptions(target="kind", namespace=NS))
    locust = start_in_cluster(run_dir, options, *prepare(options))
    try:
        assert standins.calls() == [["kind", "load", "docker-image", "reg.local/locust:7", "--name", "milvus-harness"]]
        pod = next(body for verb, kind, _, _, body in fake_api.object_log if kind == "Pod")
        assert pod["spec"]["containers"][0]["image"] == "reg.local/locust:7"
    finally:
        locust.stop(timeout=30)
    assert locust_objects(fake_api) == [] and locust.left == []  # deleted, and the client saw it


def test_an_object_left_by_someone_else_is_named_and_kept(kube, fake_api, run_dir):
    fake_api.objects[("services", NS, manifests.MASTER)] = {"metadata": {"name": manifests.MASTER, "namespace": NS}}
    locust = in_cluster(run_dir)
    with pytest.raises(TargetError) as failed:
        try:
            locust.deploy()
        finally:
            locust.stop(timeout=0)
    assert "already exists" in str(failed.value) and f"kubectl --namespace {NS} delete service locust-master" in str(
        failed.value)
    assert ("services", NS, manifests.MASTER) in fake_api.objects  # not ours: not deleted
    assert [(v, k) for v, k, _, _, _ in fake_api.object_log] == [("create", "ConfigMap"), ("delete", "ConfigMap")]


def _child(tmp_path: Path) -> subprocess.Popen[str]:
    """tests/k8s/locust_cluster_child.py with Python's default SIGINT handling."""
    return subprocess.Popen(
        [sys.executable, str(HERE / "locust_cluster_child.py"), str(tmp_path / "reports"), NS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt(child: subprocess.Popen[str]) -> str:
    try:
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return out


@pytest.fixture
def image_tools(standins):
    standins.on("docker", "build")
    standins.on("kind", "load", "docker-image")
    return standins


def test_sigint_while_loading_deletes_what_it_created(kube, fake_api, image_tools, start_master, tmp_path):
    """A real SIGINT to a process with Python's default SIGINT handling, while the load runs."""
    master = start_master(run_time=None)
    child = _child(tmp_path)
    assert child.stdout is not None
    lines = [child.stdout.readline(), child.stdout.readline()]
    if [line.strip() for line in lines] != ["deploying", "loading"]:
        child.kill()
        pytest.fail("".join(lines) + child.communicate()[0])
    wait_for(lambda: (master.dir / "acks.jsonl").exists(), 60, "the load to run")
    assert len(locust_objects(fake_api)) == 6  # ConfigMap, Service, Deployment, master pod, 2 worker pods
    out = _interrupt(child)
    assert child.returncode == 130, out
    assert "KeyboardInterrupt" in out  # the default handling, not a handler of the test's
    assert locust_objects(fake_api) == [] and "could not delete" not in out
    assert [k for v, k, _, _, _ in fake_api.object_log if v == "delete"] == ["Deployment", "Pod", "Service",
                                                                            "ConfigMap"]
    run_dir = next((tmp_path / "reports").iterdir())
    assert (run_dir / "locust.html").exists() and (run_dir / "acks.jsonl").stat().st_size > 0


def test_sigint_while_waiting_for_the_pods_deletes_what_it_created(kube, fake_api, image_tools, tmp_path):
    fake_api.waiting_for["worker"] = ("ContainerCreating", "")  # the wait goes on until interrupted
    child = _child(tmp_path)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "deploying"
    wait_for(lambda: len(fake_api.object_log) == 4, 60, "every object created")
    out = _interrupt(child)
    assert child.returncode == 130, out
    assert "loading" not in out and "KeyboardInterrupt" in out
    assert locust_objects(fake_api) == [] and "could not delete" not in out
    assert [v for v, _, _, _, _ in fake_api.object_log] == ["create"] * 4 + ["delete"] * 4


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--target", "embedded", "--locust", "in-cluster", "--workers", "2", "--users", "2"],
     "--locust in-cluster needs --target kind (got --target embedded)"),
    (["--target", "kind", "--locust", "in-cluster", "--workers", "0", "--users", "2"],
     "--locust in-cluster needs --workers N, 1 to 64 (got 0)"),
    (["--target", "kind", "--locust", "in-cluster", "--workers", "2"], "--locust in-cluster needs a pinned user count"),
    (["--target", "kind", "--locust-image", "x:1", "--users", "2"], "--locust-image is only for --locust in-cluster"),
    (["--target", "kind", "--locust", "cloud"], "argument --locust: invalid choice: 'cloud'"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(args, message, standins, kube, fake_api, tmp_path,
                                                                capsys):
    code = main(["run", "--report-dir", str(tmp_path / "reports"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert standins.calls() == [] and fake_api.object_log == [] and not (tmp_path / "reports").exists()
