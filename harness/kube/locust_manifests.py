"""The in-cluster Locust's Kubernetes objects, rendered from one plan (`run --locust in-cluster`).

A master Pod (restartPolicy Never: a finished run must not start again) whose container is
harness.kube.locust_pod, which runs the headless Locust master and serves its files through
the API server's pod proxy; a Service workers reach it by; a Deployment of N workers; and a
ConfigMap holding the scenario's TOML, mounted at /config in every pod (a scenario file of the
user's machine is not in the image). k8s/locust/master.yaml and worker.yaml are `render` of
the default plan (a test compares them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MASTER = "locust-master"
WORKER = "locust-worker"
SCENARIO_CONFIGMAP = "locust-scenario"
#: The Locust master's port for its workers, and locust_pod's port for files and the stop switch.
MASTER_PORT = 5557
FILES_PORT = 8090
DATA_DIR = "/data"
CONFIG_DIR = "/config"
LOCUSTFILE = "/app/locustfiles/milvus_insert.py"
DEFAULT_IMAGE = "milvus-harness:dev"
#: How long the master waits for its workers to connect before it gives up (Locust exits 1).
EXPECT_WORKERS_MAX_WAIT_S = 300
#: Labels on every object made; `RUN_LABEL` (the run id) when a run made them.
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
RUN_LABEL = "milvus-harness/run"
#: Files of the master's data directory that the harness copies into the run directory.
ACKS_FILE = "acks.jsonl"
CSV_PREFIX = "locust"
HTML_FILE = "locust.html"


@dataclass(frozen=True)
class LocustPlan:
    """What one in-cluster Locust runs: its image, workers, users, and the scenario it inserts."""

    milvus_host: str = "http://milvus:19530"
    image: str = DEFAULT_IMAGE
    workers: int = 2
    users: int = 4
    #: The scenario's file name in the ConfigMap (its stem is the scenario's name) and its TOML.
    scenario_file: str = "seed.toml"
    scenario_toml: str = ""
    overrides: tuple[tuple[str, str], ...] = ()
    run_time_s: int | None = None
    run_id: str | None = None

    @property
    def run_label(self) -> str | None:
        """The run id as a label value (63 characters of [A-Za-z0-9_.-], alphanumeric at both ends)."""
        if not self.run_id:
            return None
        return re.sub(r"[^A-Za-z0-9_.-]", "-", self.run_id)[:63].strip("-_.") or None

    def labels(self, component: str) -> dict[str, str]:
        """The labels of one component's objects and pods."""
        labels = {NAME_LABEL: "locust", COMPONENT_LABEL: component, MANAGED_LABEL: "milvus-harness"}
        return {**labels, RUN_LABEL: self.run_label} if self.run_label else labels

    @property
    def run_selector(self) -> str:
        """A label selector for this run's Locust pods."""
        return f"{NAME_LABEL}=locust" + (f",{RUN_LABEL}={self.run_label}" if self.run_label else "")

    def load_options(self) -> list[str]:
        """The locustfile's own options, the same on master and workers."""
        options = ["--host", self.milvus_host, "--scenario", f"{CONFIG_DIR}/{self.scenario_file}",
                   "--collection-mode", "reuse"]
        for key, value in self.overrides:
            options += ["--set", f"{key}={value}"]
        return options

    def master_args(self) -> list[str]:
        """The master's Locust command line: headless, stats and acks into the data dir."""
        args = ["python", "-m", "locust", "-f", LOCUSTFILE, "--headless", "-u", str(self.users), "-r",
                str(self.users), "--csv", f"{DATA_DIR}/{CSV_PREFIX}", "--csv-full-history",
                "--html", f"{DATA_DIR}/{HTML_FILE}", "--exit-code-on-error", "0", "--stop-timeout", "120",
                "--master", "--master-bind-port", str(MASTER_PORT), "--expect-workers", str(self.workers),
                "--expect-workers-max-wait", str(EXPECT_WORKERS_MAX_WAIT_S)]
        if self.run_time_s:
            args += ["--run-time", f"{self.run_time_s}s"]
        return [*args, *self.load_options(), "--acks-file", f"{DATA_DIR}/{ACKS_FILE}"]

    def worker_args(self) -> list[str]:
        """A worker's Locust command line: it reports every insert to the master, which writes the acks."""
        return ["python", "-m", "locust", "-f", LOCUSTFILE, "--worker", "--master-host", MASTER,
                "--master-port", str(MASTER_PORT), *self.load_options()]


def _meta(plan: LocustPlan, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": plan.labels(component)}


def _volumes(data: bool) -> list[dict[str, Any]]:
    scenario = {"name": "scenario", "configMap": {"name": SCENARIO_CONFIGMAP}}
    return [scenario, {"name": "data", "emptyDir": {}}] if data else [scenario]


def _mounts(data: bool) -> list[dict[str, Any]]:
    scenario = {"name": "scenario", "mountPath": CONFIG_DIR, "readOnly": True}
    return [scenario, {"name": "data", "mountPath": DATA_DIR}] if data else [scenario]


def scenario_configmap(plan: LocustPlan) -> dict[str, Any]:
    """The scenario's TOML, mounted at /config in every Locust pod."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(plan, SCENARIO_CONFIGMAP, "scenario"),
            "data": {plan.scenario_file: plan.scenario_toml}}


def master_service(plan: LocustPlan) -> dict[str, Any]:
    """The name workers connect to (`--master-host locust-master`)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(plan, MASTER, "master"),
            "spec": {"selector": {NAME_LABEL: "locust", COMPONENT_LABEL: "master"},
                     "ports": [{"name": "master", "port": MASTER_PORT, "targetPort": "master"}]}}


def master_pod(plan: LocustPlan) -> dict[str, Any]:
    """The master, under locust_pod (files and stop switch on FILES_PORT); never restarted."""
    container = {
        "name": "locust", "image": plan.image,
        "imagePullPolicy": "IfNotPresent",  # loaded with `kind load docker-image`
        "command": ["python", "-m", "harness.kube.locust_pod", "--dir", DATA_DIR, "--port", str(FILES_PORT), "--"],
        "args": plan.master_args(),
        "ports": [{"name": "master", "containerPort": MASTER_PORT}, {"name": "files", "containerPort": FILES_PORT}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": _mounts(data=True),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(plan, MASTER, "master"),
            "spec": {"restartPolicy": "Never", "containers": [container], "volumes": _volumes(data=True)}}


def worker_deployment(plan: LocustPlan) -> dict[str, Any]:
    """N workers; each inserts the batches the master leases to it."""
    container = {
        "name": "locust", "image": plan.image, "imagePullPolicy": "IfNotPresent",
        "command": plan.worker_args()[:3], "args": plan.worker_args()[3:],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": _mounts(data=False),
    }
    selector = {NAME_LABEL: "locust", COMPONENT_LABEL: "worker"}
    if plan.run_label:
        selector[RUN_LABEL] = plan.run_label
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(plan, WORKER, "worker"),
            "spec": {"replicas": plan.workers, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": plan.labels("worker")},
                                  "spec": {"containers": [container], "volumes": _volumes(data=False)}}}}


def render(plan: LocustPlan) -> dict[str, list[dict[str, Any]]]:
    """Every object of a plan, by the k8s/locust file that documents it (the ConfigMap has none)."""
    return {"master.yaml": [master_service(plan), master_pod(plan)],
            "worker.yaml": [worker_deployment(plan)]}
