"""Locust inside the kind cluster (`run --target kind --locust in-cluster --workers N`).

The image is built from k8s/locust/Dockerfile (or --locust-image is used) and `kind load`ed;
the scenario ConfigMap, the master's Service and Pod and the workers' Deployment
(harness.kube.locust_manifests) are created in the run's namespace through the kubernetes
client, and the run waits until every Locust pod runs. While the load runs, the master's
acks.jsonl is copied into the run directory as it grows (the live view and the stall detector
read it there, as for local Locust); at the end its CSV, HTML report and the pods' logs follow.
Everything goes through the API server: the master's files and its stop switch are
harness.kube.locust_pod's routes, read through the pod proxy. What was created is deleted on
every way out: the end of the load, a failure, Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import HarnessError, TargetError, UsageError
from harness.kube import locust_manifests as manifests
from harness.kube.locust_manifests import LocustPlan
from harness.kube.pods import pod_summary
from harness.procs import interrupts_deferred, run_command
from harness.rundir import RunDir

if TYPE_CHECKING:
    from harness.run.lifecycle import RunOptions
    from harness.scenario.model import Scenario
    from harness.targets.protocol import TargetOptions

log = logging.getLogger(__name__)

MODES = ("local", "in-cluster")
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "k8s" / "locust" / "Dockerfile"
BUILD_TIMEOUT = 1800.0
LOAD_TIMEOUT = 600.0
#: Waiting reasons of a Locust container that waiting longer will not cure.
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                 "CreateContainerConfigError", "CrashLoopBackOff")


def check_options(mode: str, workers: int, target: str, image: str | None) -> None:
    """--locust and --locust-image against the target and --workers: one UsageError line each."""
    if mode not in MODES:
        raise UsageError(f"--locust {mode!r}: allowed are {', '.join(MODES)}")
    if mode == "local":
        if image is not None:
            raise UsageError("--locust-image is only for --locust in-cluster")
        return
    if target != "kind":
        raise UsageError(f"--locust in-cluster needs --target kind (got --target {target}); "
                         f"other targets run Locust on this machine")
    if workers < 1:
        raise UsageError(f"--locust in-cluster needs --workers N, 1 to 64 (got {workers})")


def check_scenario(scenario: "Scenario") -> None:
    """In the cluster the users are pinned: the concurrency ramp runs only on this machine."""
    if scenario.users is None:
        raise UsageError("--locust in-cluster needs a pinned user count: pass --users N "
                         "(or --set users=N); the concurrency ramp runs only with local Locust")
    if scenario.check_after_restart:
        log.info("in-cluster Locust: the row check after each restart is skipped (it pauses local workers only)")


def scenario_file(name_or_path: str) -> tuple[str, str]:
    """(file name, TOML text) of a built-in scenario or a scenario file, for the ConfigMap."""
    from harness.scenario.model import BUILTIN_DIR

    path = Path(name_or_path)
    if not (name_or_path.endswith(".toml") or path.exists()):
        path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", path.name):
        raise UsageError(f"--locust in-cluster: scenario file name {path.name!r} cannot be a ConfigMap key; "
                         f"rename it to letters, digits, '-', '_' and '.'")
    return path.name, path.read_text()


def prepare_image(cluster: str, image: str | None) -> str:
    """Build the image (unless given) and load it into the kind cluster's nodes; returns its name."""
    if image is None:
        if not DOCKERFILE.exists():
            raise UsageError(f"building the Locust image needs the source tree ({DOCKERFILE} is missing); "
                             f"pass --locust-image with an image built from it")
        image = manifests.DEFAULT_IMAGE
        run_command(["docker", "build", "-f", str(DOCKERFILE), "-t", image, str(REPO)],
                    what="build the Locust image", timeout=BUILD_TIMEOUT)
    run_command(["kind", "load", "docker-image", image, "--name", cluster],
                what=f"load the Locust image {image} into kind cluster {cluster}", timeout=LOAD_TIMEOUT)
    return image


class InClusterLocust:
    """The Locust master and workers of one run in one namespace: deploy, follow, stop, copy, delete.

    `running()` and `stop()` are what the run lifecycle calls on local Locust processes too.
    """

    def __init__(self, api_client: Any, namespace: str, plan: LocustPlan, run_dir: RunDir, *,
                 poll_interval: float = 2.0, ready_timeout: float = 300.0, request_timeout: float = 15.0) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace, self.plan, self.run_dir = namespace, plan, run_dir
        self.poll_interval, self.ready_timeout, self.request_timeout = poll_interval, ready_timeout, request_timeout
        #: (kind, name) of every object this run created, in order: what delete() removes.
        self.created: list[tuple[str, str]] = []
        self.returncode: int | None = None
        #: What delete() could not delete (kind/name), named in its warning.
        self.left: list[str] = []
        self._running = False
        self._checked = 0.0
        self._acks_copied = 0  # bytes of the master's acks.jsonl already in the run directory
        self._answered = False  # the master's files server answered once: there is something to stop and copy
        self._stopped = False

    # --- deploy ----------------------------------------------------------------------------

    def deploy(self) -> None:
        """Create the objects, then wait until the master and every worker run."""
        create: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.create_namespaced_config_map, "Service": self.core.create_namespaced_service,
            "Pod": self.core.create_namespaced_pod, "Deployment": self.apps.create_namespaced_deployment}
        plan = self.plan
        for body in (manifests.scenario_configmap(plan), manifests.master_service(plan), manifests.master_pod(plan),
                     manifests.worker_deployment(plan)):
            kind, name = body["kind"], body["metadata"]["name"]
            with interrupts_deferred():  # created and recorded as one step: Ctrl-C cannot leak it
                try:
                    create[kind](self.namespace, body, _request_timeout=self.request_timeout)
                except Exception as exc:
                    raise TargetError(self._create_failed(kind, name, exc)) from None
                self.created.append((kind, name))
        self._wait_running()

    def _create_failed(self, kind: str, name: str, exc: BaseException) -> str:
        from harness.watch.kube_api import describe_error

        where = f"{kind} {self.namespace}/{name}"
        if getattr(exc, "status", None) == 409:
            return (f"cannot start in-cluster Locust: {where} already exists (left by an earlier run?); it is not "
                    f"this run's, so it stays: delete it with `kubectl --namespace {self.namespace} delete "
                    f"{kind.lower()} {name}`")
        return f"cannot create {where} for in-cluster Locust: {describe_error(exc)}"

    def _pods(self) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.plan.run_selector,
                                             _request_timeout=self.request_timeout)
        return [self.api_client.sanitize_for_serialization(p) for p in pods.items]

    def _wait_running(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            pods = [pod_summary(p) | {"role": (p["metadata"].get("labels") or {}).get(manifests.COMPONENT_LABEL)}
                    for p in self._pods()]
            bad = [p for p in pods if p["waiting"] in FATAL_WAITING or p["phase"] == "Failed"]
            if bad:
                pod = bad[0]
                hint = (f"; was the image loaded? `kind load docker-image {self.plan.image}`"
                        if "Image" in (pod["waiting"] or "") else "")
                raise TargetError(f"in-cluster Locust pod {pod['name']} cannot run: {pod['waiting'] or pod['phase']}"
                                  f"{(': ' + pod['message']) if pod['message'] else ''}{hint}"
                                  + self._master_log_tail())
            up = [p for p in pods if p["phase"] == "Running"]
            workers = [p for p in up if p["role"] == "worker"]
            if any(p["role"] == "master" for p in up) and len(workers) >= self.plan.workers and self._answers():
                return
            if time.monotonic() >= deadline:
                names = ", ".join(f"{p['name']} ({p['waiting'] or p['phase']})" for p in pods) or "none"
                raise TargetError(f"in-cluster Locust did not run within {self.ready_timeout:.0f} s: master and "
                                  f"{self.plan.workers} workers wanted, pods: {names}" + self._master_log_tail())
            time.sleep(min(self.poll_interval, 1.0))

    def _answers(self) -> bool:
        try:
            self._status()
            self._answered = True
            return True
        except Exception as exc:  # its server starts a moment after the container
            log.debug("the Locust master's files server does not answer yet: %s", exc)
            return False

    def _master_log_tail(self, lines: int = 10) -> str:
        try:
            text = self.core.read_namespaced_pod_log(manifests.MASTER, self.namespace, container="locust",
                                                     tail_lines=lines, _request_timeout=self.request_timeout)
        except Exception:
            return ""
        return f"\n{text.strip()}" if text and text.strip() else ""

    # --- the master's routes through the pod proxy -----------------------------------------

    def _get(self, path: str) -> bytes:
        response = self.core.connect_get_namespaced_pod_proxy_with_path(
            f"{manifests.MASTER}:{manifests.FILES_PORT}", self.namespace, path, _preload_content=False,
            _request_timeout=self.request_timeout)
        try:
            return response.data
        finally:
            response.release_conn()

    def _status(self) -> dict[str, Any]:
        return json.loads(self._get("status"))

    # --- what the lifecycle calls ----------------------------------------------------------

    def running(self) -> bool:
        """True while the master's Locust runs; every `poll_interval` this asks the master and
        brings the run directory's acks.jsonl up to date (its tail is the run's progress)."""
        if self._stopped:
            return False
        now = time.monotonic()
        if now - self._checked < self.poll_interval:
            return self._running
        self._checked = now
        try:
            status = self._status()
            self._running, self.returncode = bool(status["running"]), status.get("returncode")
            self.sync_acks()
            if not self._running and self.returncode:
                log.warning("the in-cluster Locust master exited with %s; see %s after the run",
                            self.returncode, self._log_path(manifests.MASTER))
        except Exception as exc:
            self._running = self._master_alive()
            log.info("cannot read the in-cluster Locust master (%s); its pod %s", exc,
                     "still runs" if self._running else "is gone or ended")
        return self._running

    def _master_alive(self) -> bool:
        try:
            pod = self.core.read_namespaced_pod(manifests.MASTER, self.namespace, _request_timeout=self.request_timeout)
        except Exception:
            return False
        return (pod.status.phase if pod.status else None) in ("Pending", "Running")

    def sync_acks(self) -> None:
        """Append the master's new complete ack lines to the run directory's acks.jsonl."""
        from kubernetes.client.exceptions import ApiException

        try:
            data = self._get(f"files/{manifests.ACKS_FILE}/{self._acks_copied}")
        except ApiException as exc:
            if exc.status == 404:
                return  # no insert settled yet
            raise
        complete = data[:data.rfind(b"\n") + 1]
        if complete:
            with self.run_dir.acks.open("ab") as handle:
                handle.write(complete)
            self._acks_copied += len(complete)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the load (SIGINT to the master, as on Ctrl-C), wait up to `timeout` for it to
        write its reports, copy them and the logs, and delete everything created; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._finish(timeout)
        finally:
            with interrupts_deferred():  # a second Ctrl-C must not leave the pods behind
                self.delete()
            self.api_client.close()

    def _finish(self, timeout: float) -> None:
        if not self._answered:  # it never ran: only the pods' logs can say why
            self._copy_logs()
            return
        deadline = time.monotonic() + timeout
        try:
            status = self._status()
            if status["running"]:
                self.core.connect_post_namespaced_pod_proxy_with_path(
                    f"{manifests.MASTER}:{manifests.FILES_PORT}", self.namespace, "stop",
                    _request_timeout=self.request_timeout)
            while status["running"] and time.monotonic() < deadline:
                time.sleep(min(self.poll_interval, 0.5))
                status = self._status()
            self.returncode = status.get("returncode")
            if status["running"]:
                log.warning("in-cluster Locust did not stop within %.0f s; copying what it wrote", timeout)
        except Exception as exc:
            log.warning("cannot stop the in-cluster Locust master through the API server: %s", exc)
        self.copy_results()

    def copy_results(self) -> None:
        """The rest of acks.jsonl, Locust's CSV files and HTML report, and every Locust pod's log."""
        try:
            self.sync_acks()
            for name in json.loads(self._get("files/")):
                if name == manifests.HTML_FILE or (name.startswith(manifests.CSV_PREFIX) and name.endswith(".csv")):
                    (self.run_dir.path / name).write_bytes(self._get(f"files/{name}"))
        except Exception as exc:
            log.warning("cannot copy the in-cluster Locust master's files: %s", exc)
        self._copy_logs()

    def _copy_logs(self) -> None:
        try:
            pods = self._pods()
        except Exception as exc:
            log.warning("cannot list the in-cluster Locust pods for their logs: %s", exc)
            pods = []
        for pod in pods:
            name = pod["metadata"]["name"]
            try:
                text = self.core.read_namespaced_pod_log(name, self.namespace, container="locust",
                                                         _request_timeout=self.request_timeout)
                self._log_path(name).write_text(text or "")
            except Exception as exc:
                log.info("no log of %s: %s", name, exc)

    def _log_path(self, pod: str) -> Path:
        """The master's log where local Locust's goes (logs/locust.log, which reports name), a worker's by its pod."""
        return self.run_dir.logs / ("locust.log" if pod == manifests.MASTER else f"{pod}.log")

    def delete(self) -> None:
        """Delete what this run created, newest first; what cannot be deleted is named in a warning."""
        from kubernetes.client.exceptions import ApiException

        remove: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.delete_namespaced_config_map, "Service": self.core.delete_namespaced_service,
            "Pod": self.core.delete_namespaced_pod, "Deployment": self.apps.delete_namespaced_deployment}
        left: list[str] = []
        while self.created:
            kind, name = self.created[-1]
            try:
                # The status is the answer: the body (the object, or a Status) is not parsed.
                remove[kind](name, self.namespace, propagation_policy="Background", _preload_content=False,
                             _request_timeout=self.request_timeout).release_conn()
            except ApiException as exc:
                if exc.status != 404:
                    left.append(f"{kind.lower()}/{name}")
            except Exception:
                left.append(f"{kind.lower()}/{name}")
            self.created.pop()
        self.left = left
        if left:
            log.warning("could not delete in-cluster Locust objects; delete them with `kubectl --namespace %s "
                        "delete %s`", self.namespace, " ".join(left))


def start_in_cluster(run_dir: RunDir, options: "RunOptions", scenario: "Scenario",
                     target: "TargetOptions") -> InClusterLocust:
    """Image, objects, wait: a running in-cluster Locust, or an error with nothing left behind."""
    from harness.kube import contexts
    from harness.kube.cluster import MILVUS_PORT, milvus_service

    check_options(options.locust, options.workers, target.target, options.locust_image)
    check_scenario(scenario)
    users = scenario.users or 1  # pinned: check_scenario refuses a ramp
    context = contexts.context_for(target) or contexts.kind_context()
    file_name, toml = scenario_file(options.scenario)
    image = prepare_image(context.removeprefix(contexts.KIND_PREFIX), options.locust_image)
    plan = LocustPlan(milvus_host=f"http://{milvus_service(target.release)}:{MILVUS_PORT}", image=image, workers=options.workers,
                      users=users, scenario_file=file_name, scenario_toml=toml,
                      overrides=tuple(options.overrides.items()),
                      run_time_s=int(options.run_time) if options.run_time else None, run_id=run_dir.path.name)
    locust = InClusterLocust(contexts.api_client(context), target.namespace, plan, run_dir)
    try:
        locust.deploy()
    except BaseException as exc:
        locust.stop(timeout=0)
        if isinstance(exc, HarnessError):
            raise
        if isinstance(exc, Exception):
            raise TargetError(f"cannot start in-cluster Locust: {exc}") from None
        raise
    return locust
