"""k8s/ and the CI workflow validate offline, and agree with the constants the code uses.

Tools: kubernetes-validate (the Kubernetes OpenAPI schemas it ships) for the Locust
manifests; a JSON schema written from kind's v1alpha4 types for kind-config.yaml;
check-jsonschema's vendored GitHub-workflow schema for .github/workflows/oom-repro.yml.
Helm values cannot be rendered without helm and the chart: every key the values files and
the code set is checked to exist in the pinned charts' own values.yaml, kept in
tests/k8s/charts/ (see its README for tag and commit). k8s/locust/ must be what
`run --locust in-cluster` renders; its image is built where a Docker engine answers.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from harness.kube import cluster
from harness.kube import locust_manifests as manifests
from harness.kube.locust_manifests import LocustPlan
from harness.units import parse_bytes

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
WORKFLOW = REPO / ".github" / "workflows" / "oom-repro.yml"
KUBERNETES_VERSIONS = ("1.29", "1.31", "1.33")

#: Every values key path k8s/values-*.yaml set, each checked to exist in the values.yaml of
#: zilliztech/milvus-helm milvus-4.2.58 and milvus-5.0.19 (paths under a free-form `{}` such
#: as `resources` end there). A new key must be checked in both charts before it is added.
VERIFIED_KEYS = {
    "cluster.enabled", "streaming.enabled", "service.type", "service.nodePort",
    "streamingNode.replicas", "streamingNode.resources", "proxy.resources", "mixCoordinator.resources",
    "dataNode.resources", "queryNode.resources", "indexNode.resources", "etcd.replicaCount", "etcd.persistence.size",
    "minio.mode", "minio.persistence.size", "minio.resources.requests.memory",
    "pulsarv3.components.autorecovery",
    "pulsarv3.zookeeper.replicaCount", "pulsarv3.zookeeper.resources.requests.cpu",
    "pulsarv3.zookeeper.resources.requests.memory", "pulsarv3.zookeeper.configData.PULSAR_MEM",
    "pulsarv3.zookeeper.volumes.data.size",
    "pulsarv3.bookkeeper.replicaCount", "pulsarv3.bookkeeper.resources.requests.cpu",
    "pulsarv3.bookkeeper.resources.requests.memory", "pulsarv3.bookkeeper.configData.PULSAR_MEM",
    "pulsarv3.bookkeeper.volumes.journal.size", "pulsarv3.bookkeeper.volumes.ledgers.size",
    "pulsarv3.broker.replicaCount", "pulsarv3.broker.resources.requests.cpu",
    "pulsarv3.broker.resources.requests.memory", "pulsarv3.broker.configData.PULSAR_MEM",
    "pulsarv3.broker.configData.managedLedgerDefaultEnsembleSize",
    "pulsarv3.broker.configData.managedLedgerDefaultWriteQuorum",
    "pulsarv3.broker.configData.managedLedgerDefaultAckQuorum",
    "pulsarv3.proxy.replicaCount", "pulsarv3.proxy.resources.requests.cpu",
    "pulsarv3.proxy.resources.requests.memory", "pulsarv3.proxy.configData.PULSAR_MEM",
}
#: Keys the code sets in the effective values (harness/kube/values.py).
SET_KEYS = {"image.all.tag", "image.all.repository", "streaming.enabled", "streamingNode.resources",
            "extraConfigFiles.user.yaml", "indexNode.enabled",
            *(f"{section}.extraEnv" for section in ("proxy", "mixCoordinator", "dataNode", "queryNode", "indexNode"))}
CHART_VALUES = sorted((Path(__file__).parent / "charts").glob("milvus-*-values.yaml"))
#: `resources: {}` in the chart: any pod resources go below these.
FREE_FORM = {f"{c}.resources" for c in ("streamingNode", "proxy", "mixCoordinator", "dataNode", "queryNode",
                                         "indexNode")}


def key_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of a values tree, stopping at free-form maps and at leaves."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            yield from key_paths(value, path + ".")
        else:
            yield path


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_every_yaml_parses():
    files = sorted(K8S.rglob("*.yaml")) + [WORKFLOW]
    assert len(files) >= 7
    for path in files:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_locust_manifests_validate_against_kubernetes_schemas(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kinds = []
    for path in sorted((K8S / "locust").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(document, version, strict=True)
            kinds.append(document["kind"])
    assert sorted(kinds) == ["Deployment", "Pod", "Service"]


def test_the_kubernetes_validator_would_catch_a_mistake():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    worker = load(K8S / "locust" / "worker.yaml")
    worker["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"memory": "1Gi"}}  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, "1.31", strict=True)


def test_kind_config_validates_against_kinds_v1alpha4_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "kind-v1alpha4.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    config = load(K8S / "kind-config.yaml")
    assert list(validator.iter_errors(config)) == []
    config["nodes"][0]["extraPortMapping"] = []  # kind would refuse the unknown field
    assert list(validator.iter_errors(config))


def test_kind_config_maps_the_ports_the_code_expects_on_loopback_only():
    config = load(K8S / "kind-config.yaml")
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"  # what kube.check_context accepts
    mappings = {m["containerPort"]: m for m in config["nodes"][0]["extraPortMappings"]}
    milvus = mappings[cluster.MILVUS_NODE_PORT]
    assert milvus["hostPort"] == cluster.MILVUS_HOST_PORT
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings.values())
    # In-cluster Locust is read through the API server's pod proxy: no node port of its own.
    assert list(mappings) == [cluster.MILVUS_NODE_PORT]


@pytest.mark.parametrize("name", ["seed", "laptop"])
def test_values_use_only_verified_chart_keys(name):
    values = load(K8S / f"values-{name}.yaml")
    used = set(key_paths(values))
    assert used <= VERIFIED_KEYS, sorted(used - VERIFIED_KEYS)
    assert "image" not in values  # the tag comes from --milvus-version only
    assert values["service"] == {"type": "NodePort", "nodePort": cluster.MILVUS_NODE_PORT}
    assert values["cluster"]["enabled"] and values["streaming"]["enabled"]


def _exists(node: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    if isinstance(node, dict) and not node:
        return True  # below a free-form `{}`
    if not isinstance(node, dict):
        return False
    # A key may itself hold dots (extraConfigFiles."user.yaml"): try the longer names too.
    return any(".".join(parts[:n]) in node and _exists(node[".".join(parts[:n])], parts[n:])
               for n in range(1, len(parts) + 1))


def test_the_pinned_charts_values_are_kept():
    assert [p.name for p in CHART_VALUES] == [f"milvus-{cluster.CHART_2_5}-values.yaml",
                                              f"milvus-{cluster.CHART_2_6}-values.yaml"]


@pytest.mark.parametrize("chart", CHART_VALUES, ids=lambda p: p.name)
def test_values_keys_exist_in_the_pinned_charts(chart):
    tree = load(chart)
    missing = [k for k in sorted(VERIFIED_KEYS | SET_KEYS) if not _exists(tree, k.split("."))]
    assert missing == [], f"{chart.name}: {missing}"
    assert not _exists(tree, "streamingNode.replicaz".split("."))  # the check can fail


@pytest.mark.parametrize("tag", ["v2.5.16", "v2.6.15", "master-20250309-faae8ee5", "master-20250313-5735c3ef"])
def test_effective_values_use_only_chart_keys(tag):
    from harness.kube import values as chart_values

    applied = chart_values.effective_values(load(K8S / "values-laptop.yaml"), tag, memory_limit=3 * 2**30,
                                            overrides={"dataNode.memory.forceSyncWatermark": 0.1})
    used = set(key_paths(applied))
    assert used <= VERIFIED_KEYS | SET_KEYS, sorted(used - VERIFIED_KEYS - SET_KEYS)


def test_seed_values_are_the_seed_topology():
    sn = load(K8S / "values-seed.yaml")["streamingNode"]
    assert sn["replicas"] == 2
    assert sn["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}


def test_laptop_values_fit_a_16_gb_machine():
    values = load(K8S / "values-laptop.yaml")
    sn = values["streamingNode"]
    assert sn["replicas"] == 2 and parse_bytes(sn["resources"]["limits"]["memory"]) <= 4 * 2**30
    others = ("proxy", "mixCoordinator", "dataNode", "queryNode", "indexNode")
    milvus_limits = sn["replicas"] * parse_bytes(sn["resources"]["limits"]["memory"]) + sum(
        parse_bytes(values[c]["resources"]["limits"]["memory"]) for c in others)
    heaps = 0
    for part in ("zookeeper", "bookkeeper", "broker", "proxy"):
        for flag in values["pulsarv3"][part]["configData"]["PULSAR_MEM"].split():
            if flag.startswith(("-Xmx", "-XX:MaxDirectMemorySize=")):
                heaps += parse_bytes(flag.split("=")[-1].removeprefix("-Xmx").replace("m", "MiB").replace("g", "GiB"))
    assert milvus_limits + heaps <= 12 * 2**30, (milvus_limits, heaps)  # Docker given ~12 of 16 GB


#: The paper calibration of docs/kind.md: figures from milvus-io/milvus#40592 and milvus.yaml.
SEED_ROWS, SEED_LIMIT, SEED_NODES = 6_680_000, 16 * 2**30, 2
FORCE_SYNC_WATERMARK = 0.5  # dataNode.memory.forceSyncWatermark, milvus.yaml default
BASE_RSS = 0.6 * 2**30  # a streaming node's own footprint before buffers (assumed, not measured here)
BATCH_BYTES = 36_854_305  # one seed batch of 50,000 rows, measured (docs/kind.md)


def test_laptop_streaming_limit_separates_a_bad_build_from_a_fixed_one():
    limit = parse_bytes(load(K8S / "values-laptop.yaml")["streamingNode"]["resources"]["limits"]["memory"])
    # A fixed build: base + watermark x limit stays under 80 % of the limit (headroom for a sync in flight).
    assert BASE_RSS + FORCE_SYNC_WATERMARK * limit <= 0.8 * limit
    # A bad build held SEED_LIMIT per node at SEED_ROWS / SEED_NODES rows: it OOMs here within the scenario.
    per_row = SEED_LIMIT / (SEED_ROWS / SEED_NODES)
    rows_to_oom = SEED_NODES * limit / per_row
    assert rows_to_oom <= 0.25 * SEED_ROWS, rows_to_oom
    # Each node's share of the buffer watermark holds many batches' slices of its 8 pchannels.
    assert FORCE_SYNC_WATERMARK * limit / 8 >= 20 * BATCH_BYTES / 16


def test_metrics_server_values():
    values = load(K8S / "metrics-server-values.yaml")
    assert "--kubelet-insecure-tls" in values["args"]
    assert "--metric-resolution=10s" in values["defaultArgs"]


def test_workflow_validates_against_the_github_workflow_schema():
    pytest.importorskip("check_jsonschema")
    from check_jsonschema import main as check_jsonschema_main

    with pytest.raises(SystemExit) as done:
        check_jsonschema_main(["--builtin-schema", "vendor.github-workflows", str(WORKFLOW)])
    assert done.value.code == 0


def test_workflow_does_what_the_issue_asks():
    workflow = load(WORKFLOW)
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert {"milvus_version", "scenario"} <= set(inputs) and inputs["scenario"]["default"] == "seed"
    steps = workflow["jobs"]["oom-repro"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("helm/kind-action@") for u in uses)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "milvus-harness cluster up" in runs
    run_step = [s for s in steps if "milvus-harness run --target kind" in s.get("run", "")][0]
    assert '--scenario "$SCENARIO"' in run_step["run"] and '--milvus-version "$MILVUS_VERSION"' in run_step["run"]
    assert not run_step.get("continue-on-error") and "if" not in run_step  # a FAIL (exit 1) fails the job
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")][0]
    assert upload["with"]["path"] == "reports/" and upload["if"] == "always()"
    # Inputs reach the shell through env, never pasted into the script (injection).
    assert "${{" not in runs


def _steps() -> list[dict[str, Any]]:
    return load(WORKFLOW)["jobs"]["oom-repro"]["steps"]


def _step(words: str) -> dict[str, Any]:
    return [s for s in _steps() if words in s.get("name", "") or words in s.get("uses", "")][0]


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], env={"PATH": os.environ["PATH"], **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_workflow_runs_the_seed_values_only_on_a_named_runner(tmp_path):
    job = load(WORKFLOW)["jobs"]["oom-repro"]
    assert job["runs-on"] == "${{ inputs.runner != '' && inputs.runner || 'ubuntu-latest' }}"
    guard = _steps()[0]
    assert guard["name"].startswith("The seed values need a runner")
    assert _bash(guard["run"], {"VALUES": "seed", "RUNNER_LABEL": ""}, tmp_path).returncode == 2
    assert _bash(guard["run"], {"VALUES": "seed", "RUNNER_LABEL": "big-64gb"}, tmp_path).returncode == 0
    assert _bash(guard["run"], {"VALUES": "laptop", "RUNNER_LABEL": ""}, tmp_path).returncode == 0


def test_workflow_caches_the_images_and_loads_them_into_kind(tmp_path):
    steps = _steps()
    listing, cache, pull, load_ = (_step("List the images"), _step("actions/cache@"), _step("Pull and save"),
                                   _step("Kind cluster with the cached images"))
    order = [steps.index(s) for s in (listing, cache, pull, load_, _step("Milvus ${{"))]
    assert order == sorted(order)  # the images are in kind before Milvus is installed
    assert cache["with"]["path"] == "/tmp/kind-images" and cache["with"]["key"] == "${{ steps.images.outputs.key }}"
    assert pull["if"] == "steps.cache.outputs.cache-hit != 'true'" and "docker save" in pull["run"]
    assert 'kind load image-archive "$IMAGES_TAR"' in load_["run"]
    # The image list is read from `helm template` output: run its sed on rendered lines.
    sed = [line for line in listing["run"].splitlines() if "sed -n" in line][0].strip().lstrip("|").strip()
    sed = sed.split(" | sort")[0]
    rendered = ('        image: "milvusdb/milvus:master-20250309-faae8ee5"\n'
                '          image: "apachepulsar/pulsar:3.0.7"\n        image: docker.io/milvusdb/etcd:3.5.18-r1\n'
                '        imagePullPolicy: IfNotPresent\n')
    out = _bash(f"printf '%s' '{rendered}' | {sed}", {}, tmp_path)
    assert out.stdout.split() == ["milvusdb/milvus:master-20250309-faae8ee5", "apachepulsar/pulsar:3.0.7",
                                  "docker.io/milvusdb/etcd:3.5.18-r1"]


def test_workflow_leaves_evidence_and_publishes_the_report(tmp_path):
    evidence = _step("Save the evidence")
    assert evidence["if"] == "always()"
    for words in ('kind export logs "$EVIDENCE/kind-logs"', "--previous", "get pods --all-namespaces --output json",
                  "/apis/metrics.k8s.io/v1beta1/pods", "--selector app.kubernetes.io/name=milvus"):
        assert words in evidence["run"], words
    assert load(WORKFLOW)["jobs"]["oom-repro"]["env"]["EVIDENCE"].startswith("reports/")  # uploaded with reports/
    junit = _step("mikepenz/action-junit-report@")
    assert junit["if"] == "always()" and junit["with"]["report_paths"] == "reports/**/junit.xml"
    summary = _step("Report in the job summary")
    assert summary["if"] == "always()"
    # Run the summary script on a reports/ tree like a run leaves.
    run_dir = tmp_path / "reports" / "20250311-seed"
    run_dir.mkdir(parents=True)
    (tmp_path / "reports" / "evidence").mkdir()
    (run_dir / "report.md").write_text("# FAIL: streamingnode OOM-killed\n")
    out = tmp_path / "summary.md"
    assert _bash(summary["run"], {"GITHUB_STEP_SUMMARY": str(out)}, tmp_path).returncode == 0
    assert out.read_text() == "# FAIL: streamingnode OOM-killed\n"
    (run_dir / "report.md").unlink()
    assert _bash(summary["run"], {"GITHUB_STEP_SUMMARY": str(out)}, tmp_path).returncode == 0
    assert "No report was written" in out.read_text()


# --- in-cluster Locust: k8s/locust/ is what `run --locust in-cluster` deploys, and its image --------


def test_k8s_locust_files_are_what_the_harness_deploys():
    for name, objects in manifests.render(LocustPlan()).items():
        assert list(yaml.safe_load_all((K8S / "locust" / name).read_text())) == objects, name


def test_a_runs_objects_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    p = LocustPlan(workers=3, users=6, scenario_file="smoke.toml", scenario_toml="total_rows = 200000\n",
                   overrides=(("batch_rows", "10000"),), run_time_s=90, run_id="20261129-231500-seed-v2.6.15")
    objects = [manifests.scenario_configmap(p), *(o for objs in manifests.render(p).values() for o in objs)]
    for body in objects:
        kubernetes_validate.validate(body, "1.31", strict=True)
    broken = manifests.worker_deployment(p)
    broken["spec"]["template"]["metadata"]["labels"].pop(manifests.RUN_LABEL)  # selector no longer matches
    broken["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.31", strict=True)


def test_run_id_labels_are_valid_label_values():
    p = LocustPlan(run_id="20261129-231500-my scenario/é-" + "x" * 80)
    value = p.labels("master")[manifests.RUN_LABEL]
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum() and " " not in value and "/" not in value


@pytest.mark.parametrize("release, service", [("milvus", "milvus"), ("my-milvus", "my-milvus"),
                                              ("loadtest", "loadtest-milvus")])
def test_the_milvus_service_is_named_as_the_chart_names_it(release, service):
    from harness.kube.cluster import milvus_service

    assert milvus_service(release) == service


def _docker_engine() -> str | None:
    """Why the image cannot be built here, or None when a Docker engine answers."""
    import shutil

    if shutil.which("docker") is None:
        return "no Docker here: `docker` is not on PATH (GitHub's ubuntu runners have it)"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
            return "`docker info` fails: no Docker engine answers"
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s"
    return None


NO_DOCKER = _docker_engine()


@pytest.mark.skipif(NO_DOCKER is not None, reason=str(NO_DOCKER))
def test_the_image_builds_and_holds_the_harness_locust_and_the_locustfile(tmp_path):
    image = "milvus-harness-test:locust-kind"
    build = subprocess.run(["docker", "build", "-f", str(K8S / "locust" / "Dockerfile"), "-t", image,
                            str(REPO)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        check = subprocess.run(["docker", "run", "--rm", image, "python", "-c",
                                "import os, locust, harness.kube.locust_pod; "
                                f"assert os.path.isfile({manifests.LOCUSTFILE!r})"],
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 0, check.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, timeout=300)
