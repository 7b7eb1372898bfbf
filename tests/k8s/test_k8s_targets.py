"""The kind and external targets and the `watch` command, with stand-in tools and the fake API."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.kube import cluster
from harness import milvus_client
from harness.cli import main
from harness.errors import TargetError, UsageError
from harness.targets.protocol import Target, TargetOptions
from harness.targets.external import ExternalTarget, parse_uri
from harness.targets.kind import KindTarget
from harness.watch import events
from harness.commands.watch import run as run_watch
from k8s_fakes import container_status, make_pod

CTX = "kind-milvus-harness"
GiB = 2**30
BASE_VALUES = {
    "cluster": {"enabled": True},
    "service": {"type": "NodePort", "nodePort": 30530},
    "streamingNode": {"replicas": 2, "resources": {"limits": {"cpu": "4", "memory": "16Gi"}}},
}


def store_base(fake_api, values: dict, source: str = "seed") -> None:
    """The ConfigMap `cluster up` leaves in the cluster."""
    fake_api.configmaps[("default", "milvus-harness-base-values")] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "milvus-harness-base-values", "namespace": "default"},
        "data": {"values.yaml": yaml.safe_dump(values), "source": source}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def answering(monkeypatch):
    """Milvus 'answers' at any address (no Milvus runs in these tests); records the addresses."""
    class Seen(list):
        """Addresses asked; `version` is what GetVersion answers (None: the tag asked for)."""
        version: str | None = None

    seen = Seen()
    monkeypatch.setattr(milvus_client, "answers", lambda address, timeout=3.0: seen.append(address) or True)
    monkeypatch.setattr(milvus_client, "accepts_writes",
                        lambda address, collection, timeout=10.0: seen.append(address) or True)

    def server_version(address, timeout=10.0):
        seen.append(address)
        return seen.version

    monkeypatch.setattr(milvus_client, "server_version", server_version)

    class NoAdmin:
        def __init__(self, *a, **k):
            raise ConnectionError("no Milvus here")

    monkeypatch.setattr(milvus_client, "MilvusAdmin", NoAdmin)
    return seen


@pytest.fixture
def kind_cluster(standins, kubeconfig, fake_api, monkeypatch):
    """Stand-ins for a kind cluster whose release exists; the NodePort is not mapped."""
    monkeypatch.setattr(cluster, "MILVUS_HOST_PORT", _free_port())
    standins.on("kind", "get", "clusters", stdout="milvus-harness\n")
    standins.on("docker", "port", stdout=f"127.0.0.1:{cluster.MILVUS_HOST_PORT}\n")
    store_base(fake_api, BASE_VALUES)
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=json.dumps({"items": [
        make_pod("milvus-proxy-1", "proxy"), make_pod("milvus-streamingnode-1", "streamingnode"),
        make_pod("milvus-streamingnode-2", "streamingnode")]}))
    fake_api.pods = [make_pod("milvus-streamingnode-a", "streamingnode", uid="a"),
                     make_pod("milvus-proxy-1", "proxy", uid="p", containers=[("proxy", "1Gi")])]
    fake_api.set_usage("milvus-streamingnode-a", "streamingnode", "2Gi")
    return standins


def _kind_temp_dirs() -> set[str]:
    """The kind target's values dirs in the temp dir (it removes its own when it stops)."""
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("milvus-harness-kind-*")}


def _kind_target(**options) -> KindTarget:
    opts = TargetOptions(target="kind", watch_interval=0.05, **options)
    return KindTarget(opts, poll_interval=0.01, answer_timeout=5)


def test_kind_target_fresh_install_port_forward_watch_and_stop(kind_cluster, answering, recorded):
    standins = kind_cluster
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "port-forward", serve=True)
    target = _kind_target(milvus_version="master-20250309-faae8ee5", memory_limit=4 * GiB,
                          milvus_config={"dataNode.memory.forceSyncWatermark": "0.1"})
    assert isinstance(target, Target)
    answering.version = "v2.6.0-dev-faae8ee5"
    with target:
        endpoint = target.start(recorded.context)
        calls = standins.calls()
        values = Path(calls[4][calls[4].index("--values") + 1])
        assert calls[:4] == [
            ["kind", "get", "clusters"],
            ["helm", "uninstall", "milvus", "--namespace", "default", "--ignore-not-found", "--wait", "--timeout", "10m",
             "--kube-context", CTX],
            ["kubectl", "--context", CTX, "--namespace", "default", "delete", "pvc", "--selector",
             "app.kubernetes.io/instance=milvus", "--ignore-not-found", "--wait=true", "--timeout=5m"],
            ["kubectl", "--context", CTX, "--namespace", "default", "delete", "pvc", "--selector",
             "release=milvus", "--ignore-not-found", "--wait=true", "--timeout=5m"],
        ]
        # One file of effective values, no --set: what run.json records is exactly what helm got.
        assert calls[4] == [
            "helm", "upgrade", "--install", "milvus", "milvus", "--repo", "https://zilliztech.github.io/milvus-helm/",
            "--version", "5.0.19", "--namespace", "default", "--create-namespace",
            "--values", str(values), "--timeout", "30m", "--kube-context", CTX]
        assert calls[5] == ["kubectl", "--context", CTX, "--namespace", "default", "get", "pods", "--output", "json"]
        assert calls[6] == ["docker", "port", "milvus-harness-control-plane", "30530/tcp"]
        assert calls[7] == ["kubectl", "--context", CTX, "--namespace", "default", "port-forward", "service/milvus",
                            f"{endpoint.port}:19530", "--address", "127.0.0.1"]
        assert len(calls) == 8

        # The stored base, the image's own values and this run's flags; never the last install's.
        applied = yaml.safe_load(values.read_text())
        assert applied["image"] == {"all": {"repository": "milvusdb/milvus", "tag": "master-20250309-faae8ee5"}}
        assert applied["streamingNode"] == {"replicas": 2, "resources": {"limits": {"cpu": "4", "memory": str(4 * GiB)}}}
        assert applied["indexNode"]["enabled"] is True  # built before milvus#40272 merged the IndexNode away
        user_yaml = yaml.safe_load(applied["extraConfigFiles"]["user.yaml"])
        assert user_yaml == {"dataNode": {"memory": {"forceSyncWatermark": 0.1}}}
        assert target.facts()["values_applied"] == applied and target.facts()["values_base"] == "seed"
        assert target.facts()["server_version"] == "v2.6.0-dev-faae8ee5"
        assert target.facts()["build_check"]["status"] == "match"

        assert endpoint.host == "127.0.0.1" and answering[:2] == [f"127.0.0.1:{endpoint.port}"] * 2
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=2):
            pass  # the forwarded port is open while the target runs
        ready = recorded.events[0]
        assert ready.type == events.READY and ready.data["endpoint"] == "port-forward"
        deadline = time.monotonic() + 5
        while not any(s.component == "streamingnode" for s in recorded.samples) and time.monotonic() < deadline:
            time.sleep(0.02)
        sample = [s for s in recorded.samples if s.component == "streamingnode"][-1]
        assert (sample.memory_bytes, sample.limit_bytes) == (2 * GiB, 16 * GiB)
        facts = target.facts()
        assert facts["chart"] == "milvus-5.0.19" and facts["image"] == "milvusdb/milvus:master-20250309-faae8ee5"
        assert facts["memory_limit_bytes"] == 4 * GiB and facts["endpoint"] == "port-forward"
        assert facts["streaming_node_replicas"] == 2
        pid = int((standins.root / "serve.pid").read_text())
        assert _pid_alive(pid)

        # The port-forward dies (proxy pod restarted): wait_ready starts it again on the same port.
        os.kill(pid, 9)
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert target.wait_ready(10)
        assert standins.calls("kubectl")[-1][-4] == "service/milvus" and len(standins.calls("kubectl")) == 5
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=2):
            pass
        pid = int((standins.root / "serve.pid").read_text())
    # Left the with-block: stop() ended the port-forward, the watcher and the temp dir.
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _pid_alive(pid)
    assert not target.watchers()[0].alive
    assert not values.exists()
    target.stop()  # twice is fine


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_kind_target_uses_the_nodeport_when_the_kind_node_publishes_it(kind_cluster, answering, recorded,
                                                                       monkeypatch):
    listener = _listener()
    port = listener.getsockname()[1]
    monkeypatch.setattr(cluster, "MILVUS_HOST_PORT", port)
    kind_cluster.rules.insert(0, {"tool": "docker", "prefix": ["port"], "contains": [], "stdout": f"127.0.0.1:{port}\n",
                                  "stderr": "", "exit": 0, "times": None, "serve": False})
    kind_cluster._save()
    answering.version = "v2.5.16"
    target = _kind_target(milvus_version="v2.5.16")
    try:
        endpoint = target.start(recorded.context)
        assert endpoint.port == port and target.endpoint_mode == "nodeport"
        assert not any("port-forward" in c for c in kind_cluster.calls())
        install = [c for c in kind_cluster.calls() if c[:3] == ["helm", "upgrade", "--install"]][0]
        assert install[install.index("--version") + 1] == "4.2.58" and "--set" not in install
        applied = target.facts()["values_applied"]
        assert applied["streaming"] == {"enabled": True}  # the 4.2.x chart's default is off
        assert target.facts()["memory_limit_bytes"] == 16 * GiB  # from the stored base
    finally:
        target.stop()
        listener.close()


def test_another_milvus_on_the_port_is_refused_before_loading(kind_cluster, answering, recorded, monkeypatch):
    """127.0.0.1:19530 answers, but the kind node does not publish it: someone else's server."""
    listener = _listener()
    monkeypatch.setattr(cluster, "MILVUS_HOST_PORT", listener.getsockname()[1])
    kind_cluster.rules.insert(0, {"tool": "docker", "prefix": ["port"], "contains": [], "stdout": "",
                                  "stderr": "Error: No public port '30530/tcp' published for milvus-harness-control-plane\n",
                                  "exit": 1, "times": None, "serve": False})
    kind_cluster._save()
    target, before = _kind_target(), _kind_temp_dirs()
    try:
        with pytest.raises(UsageError) as info:
            target.start(recorded.context)
        message = str(info.value)
        assert "\n" not in message and info.value.exit_code == 2
        assert f"127.0.0.1:{listener.getsockname()[1]} accepts connections but kind node " \
               "milvus-harness-control-plane does not publish it" in message
        assert "nothing" in message and list(answering) == []  # no Milvus call was made
        assert target.watchers() == [] and _kind_temp_dirs() == before  # its values dir is gone too
    finally:
        listener.close()


def test_a_server_reporting_another_build_stops_the_run(kind_cluster, answering, recorded):
    kind_cluster.on("kubectl", "--context", CTX, "--namespace", "default", "port-forward", serve=True)
    answering.version = "v2.6.0-dev-0698d04f"  # the other seed tag's build answers
    target = _kind_target(milvus_version="master-20250309-faae8ee5")
    with pytest.raises(TargetError) as info:
        target.start(recorded.context)
    message = str(info.value)
    assert info.value.exit_code == 125 and "\n" not in message
    assert "wrong Milvus at 127.0.0.1:" in message and "'v2.6.0-dev-0698d04f', not a build of commit faae8ee5" in message
    assert target.watchers() == [] and recorded.events == []  # never reached loading


def test_a_second_run_does_not_inherit_the_first_runs_flags(kind_cluster, answering, recorded):
    kind_cluster.on("kubectl", "--context", CTX, "--namespace", "default", "port-forward", serve=True)
    answering.version = "v2.6.15"
    first = _kind_target(memory_limit=3 * GiB, milvus_config={"dataNode.memory.forceSyncWatermark": "0.1"})
    with first:
        first.start(recorded.context)
        assert first.facts()["values_applied"]["streamingNode"]["resources"]["limits"]["memory"] == str(3 * GiB)
    second = _kind_target()
    with second:
        second.start(recorded.context)
        applied = second.facts()["values_applied"]
        assert applied["streamingNode"]["resources"]["limits"]["memory"] == "16Gi"  # the base's, not 3 GiB
        assert "extraConfigFiles" not in applied
        assert second.facts()["memory_limit_bytes"] == 16 * GiB
    helm_reads = [c for c in kind_cluster.calls("helm") if c[1] == "get"]
    assert helm_reads == []  # values come from the stored base, never from the last release


def test_without_stored_base_values_the_run_is_refused(kind_cluster, fake_api, answering, recorded):
    fake_api.configmaps.clear()
    target = _kind_target()
    with pytest.raises(UsageError, match=r"kind cluster milvus-harness has no base values \(ConfigMap "
                                         r"default/milvus-harness-base-values\); store them with `milvus-harness "
                                         r"cluster up --name milvus-harness"):
        target.start(recorded.context)
    assert not any(c[0] == "helm" for c in kind_cluster.calls())


def test_streaming_nodes_not_running_stop_the_run(kind_cluster, answering, recorded):
    kind_cluster.rules = [r for r in kind_cluster.rules if r["prefix"][-2:] != ["get", "pods"]]
    kind_cluster.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=json.dumps(
        {"items": [make_pod("milvus-proxy-1", "proxy"), make_pod("milvus-streamingnode-1", "streamingnode")]}))
    target = _kind_target()
    with pytest.raises(TargetError, match=r"1 of 2 streaming nodes are Running and Ready \(milvus-streamingnode-1 "
                                          r"\(Running, ready\)\)"):
        target.start(recorded.context)


def test_kind_target_port_forward_failure_is_125_and_cleans_up(kind_cluster, answering, recorded, capsys):
    kind_cluster.on("kubectl", "--context", CTX, "--namespace", "default", "port-forward",
                    stderr='Error from server (NotFound): services "milvus" not found\n', exit=1)
    target, before = _kind_target(), _kind_temp_dirs()
    with pytest.raises(TargetError) as info:
        target.start(recorded.context)
    message = str(info.value)
    assert info.value.exit_code == 125
    assert "kubectl --context kind-milvus-harness --namespace default port-forward service/milvus" in message
    assert "exited with 1" in message and 'services "milvus" not found' in message
    assert target.watchers() == [] and _kind_temp_dirs() == before  # its values dir is gone too


def test_kind_target_refuses_early(standins, kubeconfig, monkeypatch):
    with pytest.raises(UsageError, match="runs Milvus 2.5, 2.6 and master"):
        _kind_target(milvus_version="v2.3.5")
    with pytest.raises(UsageError, match="needs a kind cluster's context"):
        _kind_target(kube_context="some-prod", allow_context="some-prod")
    standins.on("kind", "get", "clusters", stdout="other\n")
    with pytest.raises(UsageError, match="no kind cluster named milvus-harness; create it with `milvus-harness cluster up"):
        _kind_target().start(__import__("harness.watch.events", fromlist=["RunEvents"]).RunEvents())
    assert [c[0] for c in standins.calls()] == ["kind"]  # nothing was installed


@pytest.mark.parametrize("uri, expected", [
    ("http://127.0.0.1:19530", ("127.0.0.1", 19530)), ("tcp://milvus.local:1234", ("milvus.local", 1234)),
    ("localhost:19531", ("localhost", 19531)), ("10.0.0.5", ("10.0.0.5", 19530)),
])
def test_parse_uri(uri, expected):
    assert parse_uri(uri) == expected


@pytest.mark.parametrize("uri", ["ftp://host:1", "http://:19530", "http://host:99999", "http://host:port"])
def test_parse_uri_rejects(uri):
    with pytest.raises(UsageError, match="is not a Milvus address"):
        parse_uri(uri)


def test_external_target_watches_through_its_context(kubeconfig, fake_api, answering, recorded):
    fake_api.pods = [make_pod("m-proxy", "proxy", uid="p", containers=[("proxy", "1Gi")]),
                     make_pod("m-sn-0", "streamingnode", uid="s"), make_pod("m-dn-0", "datanode", uid="d",
                                                                            containers=[("datanode", "8Gi")])]
    fake_api.set_usage("m-sn-0", "streamingnode", "5Gi")
    options = TargetOptions(target="external", uri="http://127.0.0.1:19530", kube_context="kind-test",
                            watch_interval=0.05)
    with ExternalTarget(options) as target:
        endpoint = target.start(recorded.context)
        assert endpoint.address == "127.0.0.1:19530" and recorded.events[0].type == events.READY
        deadline = time.monotonic() + 5
        while len({s.component for s in recorded.samples}) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {s.component for s in recorded.samples} == {"proxy", "streamingnode", "datanode"}
        assert [s for s in recorded.samples if s.component == "streamingnode"][-1].memory_bytes == 5 * GiB
        assert target.facts()["kube_context"] == "kind-test"
        assert target.wait_ready(1)
    assert not target.watchers()[0].alive


def test_external_target_without_context_has_no_watcher_and_needs_a_uri(answering, recorded, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    with pytest.raises(UsageError, match="needs --uri"):
        ExternalTarget(TargetOptions(target="external"))
    with pytest.raises(UsageError, match="refusing kube context 'some-prod'"):
        ExternalTarget(TargetOptions(target="external", uri="http://127.0.0.1:1", kube_context="some-prod"))
    target = ExternalTarget(TargetOptions(target="external", uri="127.0.0.1:19530"))
    target.start(recorded.context)
    assert target.watchers() == [] and target.facts()["kube_context"] is None
    target.stop()


def test_external_target_that_does_not_answer_is_125(monkeypatch, recorded):
    monkeypatch.setattr(milvus_client, "answers", lambda address, timeout=3.0: False)
    target = ExternalTarget(TargetOptions(target="external", uri="http://127.0.0.1:9"), answer_timeout=0.3)
    with pytest.raises(TargetError, match="does not answer") as info:
        target.start(recorded.context)
    assert info.value.exit_code == 125


def test_watch_command_records_an_oom_kill(kubeconfig, fake_api, tmp_path):
    fake_api.pods = [make_pod("sn", "streamingnode", uid="s")]
    fake_api.set_usage("sn", "streamingnode", "12Gi")
    killed = int(time.time()) - 1

    def later(_watcher) -> None:
        def change() -> None:
            with fake_api.lock:
                fake_api.pods = [make_pod("sn", "streamingnode", uid="s", statuses=[container_status(
                    "streamingnode", restarts=1, last_terminated={"reason": "OOMKilled", "finished": killed})])]
        threading.Timer(0.5, change).start()

    out = tmp_path / "watched"
    code = run_watch(target="kind", kube_context="kind-test", allow_context=None, namespace="default",
                     selector="app.kubernetes.io/name=milvus", interval=0.1, duration=1.5, out=out, on_started=later)
    assert code == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    # One sample per new PodMetrics figure (the stand-in stamps whole seconds), plus one carrying the restart.
    assert len(samples) >= 2 and {s["component"] for s in samples} == {"streamingnode"}
    assert all(s["t"] == int(s["t"]) for s in samples if s["memory_bytes"] is not None)
    assert samples[0]["memory_bytes"] == 12 * GiB and samples[0]["limit_bytes"] == 16 * GiB
    assert [e["type"] for e in events] == ["OOMKilled", "Restarted"] and events[0]["t"] == killed
    assert json.loads((out / "run.json").read_text())["kube_context"] == "kind-test"


def test_watch_cli(kubeconfig, fake_api, tmp_path, capsys):
    fake_api.pods = [make_pod("px", "proxy", uid="p", containers=[("proxy", "1Gi")])]
    out = tmp_path / "w"
    assert main(["watch", "--kube-context", "kind-test", "--interval", "0.1s", "--duration", "0.5s",
                 "--out", str(out)]) == 0
    assert (out / "samples.jsonl").read_text().count('"component":"proxy"') >= 2
    assert "samples" in capsys.readouterr().out
    assert main(["watch", "--kube-context", "kind-test", "--interval", "0.01s", "--out", str(out)]) == 2
    assert main(["watch", "--target", "external", "--out", str(out)]) == 2
    assert "needs --kube-context" in capsys.readouterr().err


def test_the_report_shows_the_values_applied(kind_cluster, answering, recorded, tmp_path):
    from harness.report.markdown import render_markdown
    from harness.report.model import RunReport
    from harness.report.tables import facts

    kind_cluster.on("kubectl", "--context", CTX, "--namespace", "default", "port-forward", serve=True)
    answering.version = "v2.6.15"
    with _kind_target(memory_limit=3 * GiB) as target:
        target.start(recorded.context)
        run = {"facts": target.facts(), "isolation": target.facts()["isolation"]}
    report = RunReport(path=tmp_path, run=run, summary={})
    rows = dict(facts(report))
    assert rows["Image"] == "milvusdb/milvus:v2.6.15" and rows["Chart"] == "zilliztech/milvus-5.0.19"
    assert rows["Server version"].startswith("v2.6.15 (match")
    text = render_markdown(report, None)
    block = text.split("## Helm values applied\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == target.facts()["values_applied"]
    assert yaml.safe_load(block)["streamingNode"]["resources"]["limits"]["memory"] == str(3 * GiB)


def test_another_image_repository_is_another_run_key():
    """matrix and bisect reuse a run with the same key: the same tag from another registry is not the same image."""
    from harness.run.lifecycle import run_key
    from harness.scenario import model

    seed = model.load("seed")
    default = run_key(seed, TargetOptions(target="kind", milvus_version="v2.6.15"), "v2.6.15", {})
    same = run_key(seed, TargetOptions(target="kind", milvus_version="v2.6.15", image_repository="milvusdb/milvus"),
                   "v2.6.15", {})
    other = run_key(seed, TargetOptions(target="kind", milvus_version="v2.6.15",
                                        image_repository="localhost:5000/milvus"), "v2.6.15", {})
    assert default == same and other != default
