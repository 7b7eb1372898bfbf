"""`cluster up|down|status` through stand-in kind / helm / kubectl / docker that record argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import yaml

from harness.kube import cluster, pods
from harness.cli import main
from harness.errors import TargetError
from k8s_fakes import container_status, etcd_pod, make_pod, minio_pod, pulsar_pod, write_kubeconfig

K8S = Path(__file__).resolve().parents[2] / "k8s"
CTX = "kind-milvus-harness"


def pod_list(*pods: dict) -> str:
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "items": list(pods)})


def ready_pods() -> str:
    return pod_list(
        make_pod("milvus-proxy-1", "proxy"), make_pod("milvus-streamingnode-1", "streamingnode"),
        make_pod("milvus-streamingnode-2", "streamingnode"), make_pod("milvus-mixcoord-1", "mixcoord"),
        etcd_pod("milvus-etcd-0"), minio_pod("milvus-minio-5f8d7c9b4-x2x7q"),
        pulsar_pod("milvus-pulsarv3-broker-0", "broker"), pulsar_pod("milvus-pulsarv3-proxy-0", "proxy"),
        make_pod("someone-else", "proxy", release="other", ready=False),  # not ours: not waited for
    )


@pytest.fixture
def local_kind(tmp_path, monkeypatch, fake_api):
    """The kubeconfig kind would write for kind-milvus-harness (API on loopback: the stand-in)."""
    path = write_kubeconfig(tmp_path / "kubeconfig", {CTX: fake_api.url})
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def happy(standins, *, existing: bool = False) -> None:
    standins.on("docker", "info", stdout="27.3.1\n")
    standins.on("kind", "get", "clusters", stdout="milvus-harness\n" if existing else "No kind clusters found.\n")
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=ready_pods())


def up(*args: str) -> int:
    return main(["cluster", "up", *args])


def test_cluster_up_runs_the_exact_commands(standins, local_kind, fake_api, capsys):
    happy(standins)
    assert up("--values", "seed", "--milvus-version", "master-20250309-faae8ee5") == 0
    milvus_install = [c for c in standins.calls() if c[:3] == ["helm", "upgrade", "--install"]][1]
    install_values = milvus_install[milvus_install.index("--values") + 1]
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
         "--values", install_values, "--timeout", "30m", "--kube-context", CTX],
        ["kubectl", "--context", CTX, "--namespace", "default", "get", "pods", "--output", "json"],
        ["docker", "port", "milvus-harness-control-plane", "30530/tcp"],
    ]
    out = capsys.readouterr().out
    assert "ready on kind cluster milvus-harness (created)" in out and "http://127.0.0.1:19530" in out
    assert "2 streaming nodes Running and Ready" in out
    # The base is stored (after the install made the namespace), and is the seed values file as it is.
    stored = fake_api.configmaps[("default", "milvus-harness-base-values")]
    assert yaml.safe_load(stored["data"]["values.yaml"]) == yaml.safe_load((K8S / "values-seed.yaml").read_text())
    assert stored["data"]["source"] == "seed"
    puts = [r for r in fake_api.requests if r.startswith(("PUT ", "POST "))]
    assert puts == ["PUT /api/v1/namespaces/default/configmaps/milvus-harness-base-values",
                    "POST /api/v1/namespaces/default/configmaps"]  # not there yet: replace 404s, then create


def test_cluster_up_on_an_existing_cluster_with_a_2_5_tag(standins, local_kind):
    happy(standins, existing=True)
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods",
                stdout=pod_list(make_pod("m-proxy-1", "proxy", release="m"),
                                *(make_pod(f"m-streamingnode-{i}", "streamingnode", release="m") for i in (1, 2))))
    standins.rules.insert(0, standins.rules.pop())  # before happy()'s answer for release milvus
    standins._save()
    assert up("--milvus-version", "v2.5.16", "--release", "m") == 0
    calls = standins.calls()
    assert not any(c[:2] == ["kind", "create"] for c in calls)
    install = [c for c in calls if c[:4] == ["helm", "upgrade", "--install", "m"]][0]
    assert install[install.index("--version") + 1] == "4.2.58"
    assert "--set" not in install and install.count("--values") == 1


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
    with pytest.raises(TargetError, match=r"not ready within 0 s; not ready: milvus-streamingnode-1 \(CrashLoopBackOff\)"):
        cluster.cluster_up(spec)
    assert len([c for c in standins.calls() if c[0] == "kubectl"]) >= 2  # it polled


def test_wait_until_every_pod_is_ready(standins, local_kind):
    starting = pod_list(make_pod("milvus-proxy-1", "proxy", ready=False), make_pod("milvus-etcd-0", "etcd"))
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=starting, times=2)
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=ready_pods())
    ready = pods.wait_ready(cluster.Kube(), cluster.ClusterSpec(poll_interval=0.01), timeout=10)
    assert len(standins.calls("kubectl")) == 3
    assert {p["metadata"]["name"] for p in ready} == {
        "milvus-proxy-1", "milvus-streamingnode-1", "milvus-streamingnode-2", "milvus-mixcoord-1", "milvus-etcd-0",
        "milvus-minio-5f8d7c9b4-x2x7q", "milvus-pulsarv3-broker-0", "milvus-pulsarv3-proxy-0"}


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


@pytest.mark.parametrize("tag, chart", [
    ("v2.5.16", "4.2.58"), ("2.5-20250301-abcdef12", "4.2.58"), ("v2.6.15", "5.0.19"), ("v2.6.0-rc1", "5.0.19"),
    ("master-20250309-faae8ee5", "5.0.19"),
])
def test_chart_pins(tag, chart):
    assert cluster.chart_for_tag(tag).version == chart


def _env(values: dict, section: str) -> list:
    return [e for e in (values.get(section) or {}).get("extraEnv") or [] if e["name"] == "MILVUS_STREAMING_SERVICE_ENABLED"]


@pytest.mark.parametrize("tag, index_node, streaming_env, streaming_enabled", [
    # The seed's bad builds: before milvus#40272 (2025-03-13) merged the IndexNode into the DataNode.
    ("master-20250309-faae8ee5", True, True, None),
    ("master-20250311-0698d04f", True, True, None),
    # The day of the merge and of the fix 5735c3ef: no IndexNode; the streaming switch still set.
    ("master-20250313-5735c3ef", None, True, None),
    ("master-20250801-0123abcd", None, False, None),  # after the switch's window
    ("v2.6.15", None, False, None),
    ("v2.5.16", None, False, True),  # chart 4.2.x sets the switch itself once streaming.enabled
])
def test_values_follow_the_images_build_date(tag, index_node, streaming_env, streaming_enabled):
    from harness.kube import values as chart_values

    base = {"dataNode": {"extraEnv": [{"name": "GODEBUG", "value": "madvdontneed=1"}]},
            "image": {"all": {"tag": "stale"}}}
    applied = chart_values.effective_values(base, tag, "localhost:5000/milvus")
    assert applied["image"] == {"all": {"repository": "localhost:5000/milvus", "tag": tag}}
    assert (applied.get("indexNode") or {}).get("enabled") is index_node
    assert (applied.get("streaming") or {}).get("enabled") is streaming_enabled
    for section in ("proxy", "mixCoordinator", "dataNode", "queryNode"):
        assert _env(applied, section) == ([{"name": "MILVUS_STREAMING_SERVICE_ENABLED", "value": "1"}]
                                          if streaming_env else []), section
    assert {"name": "GODEBUG", "value": "madvdontneed=1"} in applied["dataNode"]["extraEnv"]  # the user's kept
    assert base["image"]["all"]["tag"] == "stale" and len(base["dataNode"]["extraEnv"]) == 1  # base untouched


def test_cluster_up_installs_the_date_switches_and_the_image_repository(standins, local_kind, fake_api):
    happy(standins)
    assert up("--milvus-version", "master-20250311-0698d04f", "--image-repository", "localhost:5000/milvus") == 0
    install = [c for c in standins.calls() if c[:4] == ["helm", "upgrade", "--install", "milvus"]][0]
    assert "--set" not in install
    # The values file is gone after the install; the stored base has no image switches in it.
    stored = yaml.safe_load(fake_api.configmaps[("default", "milvus-harness-base-values")]["data"]["values.yaml"])
    assert "enabled" not in stored["indexNode"] and "image" not in stored
    assert up("--milvus-version", "master-20250311-0698d04f", "--image-repository", "Bad Repo") == 2


def test_a_values_file_is_layered_over_the_profile_in_the_base(standins, local_kind, fake_api, tmp_path):
    happy(standins)
    mine = tmp_path / "mine.yaml"
    mine.write_text("streamingNode:\n  resources:\n    limits:\n      memory: 3Gi\n")
    assert up("--values", "laptop", "--values-file", str(mine)) == 0
    data = fake_api.configmaps[("default", "milvus-harness-base-values")]["data"]
    stored = yaml.safe_load(data["values.yaml"])
    assert stored["streamingNode"]["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    assert stored["streamingNode"]["replicas"] == 2 and data["source"] == f"laptop + {mine}"


def test_pulsars_proxy_is_not_taken_for_milvus(standins, local_kind):
    """Pulsar's proxy is `component: proxy`, `release: milvus` too: it must not make Milvus 'ready'."""
    no_milvus_proxy = pod_list(
        pulsar_pod("milvus-pulsarv3-proxy-0", "proxy"), make_pod("milvus-streamingnode-1", "streamingnode"),
        etcd_pod("milvus-etcd-0"))
    standins.on("kubectl", "--context", CTX, "--namespace", "default", "get", "pods", stdout=no_milvus_proxy)
    with pytest.raises(TargetError, match="was not ready within 0 s"):
        pods.wait_ready(cluster.Kube(), cluster.ClusterSpec(poll_interval=0.01), timeout=0.2)
    raw = json.loads(no_milvus_proxy)["items"]
    assert [p["metadata"]["name"] for p in raw if pods.is_milvus_pod(p, "milvus")] == ["milvus-streamingnode-1"]
    # Nor are Pulsar's pods streaming nodes of Milvus.
    with pytest.raises(TargetError, match="1 of 2 streaming nodes"):
        pods.check_streaming_nodes(raw + [pulsar_pod("milvus-pulsarv3-x", "streamingnode")],
                                      cluster.ClusterSpec(), 2)


def test_cluster_up_without_running_streaming_nodes_fails_naming_them(standins, local_kind, capsys):
    """Every pod ready, but the values gave no streaming node (e.g. streaming off): not a usable cluster."""
    happy(standins)
    standins.rules[-1]["stdout"] = pod_list(make_pod("milvus-proxy-1", "proxy"), make_pod("milvus-mixcoord-1", "mixcoord"),
                                            pulsar_pod("milvus-pulsarv3-broker-0", "broker"))
    standins._save()
    assert up() == 125
    err = capsys.readouterr().err
    assert "0 of 2 streaming nodes are Running and Ready (no streaming node pods)" in err
