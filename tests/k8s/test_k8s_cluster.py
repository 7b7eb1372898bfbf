"""`cluster up|down|status` through stand-in kind / helm / kubectl / docker that record argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.kube import cluster
from harness.cli import main
from k8s_fakes import container_status, make_pod, write_kubeconfig

K8S = Path(__file__).resolve().parents[2] / "k8s"
CTX = "kind-milvus-harness"


def pod_list(*pods: dict) -> str:
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "items": list(pods)})


def ready_pods() -> str:
    return pod_list(
        make_pod("milvus-proxy-1", "proxy"), make_pod("milvus-streamingnode-1", "streamingnode"),
        make_pod("milvus-streamingnode-2", "streamingnode"), make_pod("milvus-mixcoord-1", "mixcoord"),
        make_pod("milvus-etcd-0", "", labels={"app.kubernetes.io/name": "etcd"}),
        make_pod("milvus-pulsarv3-broker-0", "broker", release="x", labels={"release": "milvus"}),
        make_pod("someone-else", "proxy", release="other", ready=False),  # not ours: not waited for
    )


@pytest.fixture
def local_kind(tmp_path, monkeypatch):
    """The kubeconfig kind would write for kind-milvus-harness (API on loopback)."""
    path = write_kubeconfig(tmp_path / "kubeconfig", {CTX: "https://127.0.0.1:41234"})
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def happy(standins, *, existing: bool = False) -> None:
    standins.on("docker", "info", stdout="27.3.1\n")
    standins.on("kind", "get", "clusters", stdout="milvus-harness\n" if existing else "No kind clusters found.\n")
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=ready_pods())


def up(*args: str) -> int:
    return main(["cluster", "up", *args])


def test_cluster_up_runs_the_exact_commands(standins, local_kind, capsys):
    happy(standins)
    assert up("--values", "seed", "--milvus-version", "master-20250309-faae8ee5") == 0
    assert standins.calls() == [
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        ["kind", "get", "clusters"],
        ["kind", "create", "cluster", "--name", "milvus-harness", "--config", str(K8S / "kind-config.yaml"),
         "--wait", "180s"],
        ["helm", "upgrade", "--install", "metrics-server", "metrics-server",
         "--repo", "https://kubernetes-sigs.github.io/metrics-server/", "--version", "3.12.2",
         "--namespace", "kube-system", "--values", str(K8S / "metrics-server-values.yaml"),
         "--wait", "--timeout", "5m", "--kube-context", CTX],
        ["helm", "upgrade", "--install", "milvus", "milvus", "--repo", "https://zilliztech.github.io/milvus-helm/",
         "--version", "5.0.19", "--namespace", "default", "--create-namespace",
         "--values", str(K8S / "values-seed.yaml"), "--set", "image.all.tag=master-20250309-faae8ee5",
         "--timeout", "30m", "--kube-context", CTX],
        ["kubectl", "--context", CTX, "--namespace", "default", "get", "pods", "--output", "json"],
    ]
    out = capsys.readouterr().out
    assert "ready on kind cluster milvus-harness (created)" in out and "http://127.0.0.1:19530" in out


def test_cluster_up_on_an_existing_cluster_with_a_2_5_tag(standins, local_kind):
    happy(standins, existing=True)
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods",
                stdout=pod_list(make_pod("m-proxy-1", "proxy", release="m")))
    standins.rules.insert(0, standins.rules.pop())  # before happy()'s answer for release milvus
    standins._save()
    assert up("--milvus-version", "v2.5.16", "--release", "m") == 0
    calls = standins.calls()
    assert not any(c[:2] == ["kind", "create"] for c in calls)
    install = [c for c in calls if c[:4] == ["helm", "upgrade", "--install", "m"]][0]
    assert install[install.index("--version") + 1] == "4.2.58"
    assert install[install.index("--values") + 1] == str(K8S / "values-laptop.yaml")  # the default
    sets = [install[i + 1] for i, a in enumerate(install) if a == "--set"]
    assert sets == ["image.all.tag=v2.5.16", "streaming.enabled=true"]


def test_a_failing_step_shows_its_command_and_output_and_exits_125(standins, local_kind, capsys):
    happy(standins)
    standins.on("helm", "upgrade", "--install", "milvus", stderr="Error: INSTALLATION FAILED: chart \"milvus\" "
                "version \"5.0.19\" not found in https://zilliztech.github.io/milvus-helm/ repository\n", exit=1)
    assert up() == 125
    err = capsys.readouterr().err
    assert "cannot install Milvus v2.6.15 (chart 5.0.19): `helm upgrade --install milvus milvus --repo" in err
    assert "exited with 1" in err and "INSTALLATION FAILED" in err
    assert not any(c[0] == "kubectl" for c in standins.calls())  # nothing after the failing step


def test_docker_engine_down_is_125_with_its_output(standins, local_kind, capsys):
    standins.on("docker", "info", stderr="Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                "Is the docker daemon running?\n", exit=1)
    assert up() == 125
    err = capsys.readouterr().err
    assert "reach the Docker engine" in err and "Is the docker daemon running?" in err
    assert [c[0] for c in standins.calls()] == ["docker"]


def test_missing_tools_one_line_how_to_install_exit_2(tmp_path, monkeypatch, local_kind, capsys):
    from conftest import make_standins

    only_docker = make_standins(tmp_path / "s", ("docker",))
    monkeypatch.setenv("PATH", str(only_docker.bin))
    assert up() == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "kind is not installed; install kind 0.20 or newer: https://kind.sigs.k8s.io" in err
    assert "helm is not installed; install Helm 3.14" in err and "kubectl is not installed" in err
    assert "docker is not installed" not in err
    assert only_docker.calls() == []


@pytest.mark.parametrize("args, message", [
    (["--milvus-version", "v2.4.9"], "runs Milvus 2.5, 2.6 and master image tags"),
    (["--milvus-version", "bad tag"], "is not a valid image tag"),
    (["--values", "/nonexistent/values.yaml"], "not seed, laptop or an existing values file"),
])
def test_bad_input_exits_2_before_any_command(args, message, standins, local_kind, capsys):
    happy(standins)
    assert up(*args) == 2
    assert message in capsys.readouterr().err
    assert standins.calls() == []


def test_a_context_that_is_not_local_stops_before_helm(standins, tmp_path, monkeypatch, capsys):
    # Someone's kubeconfig has kind-milvus-harness pointing elsewhere: never install there.
    path = write_kubeconfig(tmp_path / "kc", {CTX: "https://10.0.0.7:6443"})
    monkeypatch.setenv("KUBECONFIG", str(path))
    happy(standins, existing=True)
    assert up() == 2
    assert "is not on a loopback address" in capsys.readouterr().err
    assert not any(c[0] == "helm" for c in standins.calls())


def test_image_that_cannot_be_pulled_fails_fast(standins, local_kind, capsys):
    happy(standins)
    bad = make_pod("milvus-streamingnode-1", "streamingnode", ready=False, statuses=[container_status(
        "streamingnode", waiting=("ErrImagePull", 'rpc error: code = NotFound desc = failed to pull and unpack image '
                                  '"docker.io/milvusdb/milvus:master-20990101-deadbeef": not found'))])
    standins.rules[-1]["stdout"] = pod_list(make_pod("milvus-proxy-1", "proxy"), bad)
    standins._save()
    assert up("--milvus-version", "master-20990101-deadbeef") == 125
    err = capsys.readouterr().err
    assert "image milvusdb/milvus:master-20990101-deadbeef cannot be pulled" in err and "not found" in err


def test_pods_not_ready_in_time_name_the_pods(standins, local_kind):
    happy(standins)
    slow = make_pod("milvus-streamingnode-1", "streamingnode", ready=False, statuses=[container_status(
        "streamingnode", waiting=("CrashLoopBackOff", "back-off 20s"))])
    standins.rules[-1]["stdout"] = pod_list(make_pod("milvus-proxy-1", "proxy"), slow)
    standins._save()
    spec = cluster.ClusterSpec(timeout=0.3, poll_interval=0.05)
    with pytest.raises(cluster.TargetError, match=r"not ready within 0 s; not ready: milvus-streamingnode-1 \(CrashLoopBackOff\)"):
        cluster.cluster_up(spec)
    assert len([c for c in standins.calls() if c[0] == "kubectl"]) >= 2  # it polled


def test_wait_until_every_pod_is_ready(standins, local_kind):
    starting = pod_list(make_pod("milvus-proxy-1", "proxy", ready=False), make_pod("milvus-etcd-0", "etcd"))
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=starting, times=2)
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=ready_pods())
    pods = cluster.wait_ready(cluster.Kube(), cluster.ClusterSpec(poll_interval=0.01), timeout=10)
    assert len(standins.calls("kubectl")) == 3
    assert {p["name"] for p in pods} == {"milvus-proxy-1", "milvus-streamingnode-1", "milvus-streamingnode-2",
                                         "milvus-mixcoord-1", "milvus-etcd-0", "milvus-pulsarv3-broker-0"}


def test_cluster_down(standins, capsys):
    standins.on("kind", "get", "clusters", stdout="milvus-harness\nother\n", times=1)
    assert main(["cluster", "down"]) == 0
    assert standins.calls() == [["kind", "get", "clusters"], ["kind", "delete", "cluster", "--name", "milvus-harness"]]
    # Already gone: nothing to delete, still success.
    assert main(["cluster", "down"]) == 0
    assert standins.calls()[-1] == ["kind", "get", "clusters"]


def test_cluster_status(standins, local_kind, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten pod names to fit 80 columns
    happy(standins, existing=True)
    assert main(["cluster", "status"]) == 0
    out = capsys.readouterr().out
    assert "milvus-streamingnode-2" in out and "someone-else" not in out
    standins.rules[-1]["stdout"] = pod_list(make_pod("milvus-proxy-1", "proxy", ready=False))
    standins._save()
    assert main(["cluster", "status"]) == 1
    assert standins.calls()[-1] == ["kubectl", "--context", CTX, "--namespace", "default", "get", "pods",
                                    "--output", "json"]


def test_cluster_status_without_a_cluster(standins, capsys):
    standins.on("kind", "get", "clusters", stdout="No kind clusters found.\n")
    assert main(["cluster", "status"]) == 1
    assert "no kind cluster named milvus-harness" in capsys.readouterr().out


@pytest.mark.parametrize("tag, chart, sets", [
    ("v2.5.16", "4.2.58", ("streaming.enabled=true",)), ("2.5-20250301-abcdef12", "4.2.58", ("streaming.enabled=true",)),
    ("v2.6.15", "5.0.19", ()), ("v2.6.0-rc1", "5.0.19", ()), ("master-20250309-faae8ee5", "5.0.19", ()),
])
def test_chart_pins(tag, chart, sets):
    pin = cluster.chart_for_tag(tag)
    assert (pin.version, pin.sets) == (chart, sets)
