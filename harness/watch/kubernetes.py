"""The Kubernetes watcher: memory, limits, restarts and OOM kills of Milvus's pods.

Each poll lists the pods of a label selector (core API), then their containers' memory
(metrics.k8s.io, the container working set that the limit is enforced on), and for the pods
of the roles under test Milvus's own /metrics through the API server's pod proxy. Samples
are named after the pod's `component` label (streamingnode, proxy, datanode, ...); when a
component runs several pods, each keeps a stable series (`streamingnode`,
`streamingnode-2`) and a pod that replaces a deleted one continues its series.

Memory at the resolution of an OOM: metrics-server refreshes a pod's figure every 10-15 s,
so a PodMetrics sample is stamped with the item's own `timestamp` (not the poll's) and
fired once per new timestamp, its `window` kept. The /metrics read (process_resident_memory_bytes,
go_memstats_*) happens on every poll (default 2 s) and is stamped with the time it was read.
Each sample's `source` says which it is (harness.watch.sources); peaks use the finest.

Nothing is missed between polls: restarts come from restartCount deltas, OOM kills from
the last termination kubelet keeps (reason OOMKilled, exit code 137, finishedAt as the event
time), each termination reported once. The API server or the metrics API failing, missing
(404), unavailable (503) or slow is a WatchGap event, retried with back-off; the watcher
itself never dies of it.

The API's back-off and gap accounting live in watch/kube_api.py, the reads besides the pod list
(PodMetrics, the pod proxy, a dead container's log) in watch/kube_reads.py, and which samples a
container gets in watch/kube_samples.py.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.units import format_bytes
from harness.watch import events, kube_reads
from harness.watch.events import RunEvents
from harness.watch.kube_samples import ContainerSamples
from harness.watch.kube_api import MAX_BACKOFF, Backoff, Gap, describe_error
from harness.watch.metrics import parse_metrics

log = logging.getLogger(__name__)

#: The chart's label on every Milvus pod (not on Pulsar, etcd or MinIO pods).
DEFAULT_SELECTOR = "app.kubernetes.io/name=milvus"
#: A container kubelet holds back from restarting. Kubernetes-only, so it lives here.
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
#: Components named in WatchGap events: which API failed.
API_COMPONENT = "kube-apiserver"
METRICS_COMPONENT = "metrics.k8s.io"


@dataclass
class _Container:
    restart_count: int = 0
    terminations: set[str] = field(default_factory=set)
    waiting: str | None = None
    crash_loop_reported_at: int = -1  # restartCount when CrashLoopBackOff was last reported


@dataclass
class _Pod:
    uid: str
    name: str
    component: str
    slot: int
    main: str
    replaces: str | None = None
    ready: bool = False
    containers: dict[str, _Container] = field(default_factory=dict)

    @property
    def series(self) -> str:
        return self.component if self.slot == 0 else f"{self.component}-{self.slot + 1}"

    def series_of(self, container: str) -> str:
        return self.series if container == self.main else f"{self.series}/{container}"


def _ts(value: Any, default: float) -> float:
    return value.timestamp() if value is not None and hasattr(value, "timestamp") else default


def _termination_key(term: Any) -> str:
    finished = term.finished_at.isoformat() if term.finished_at is not None else ""
    return f"{term.container_id or ''}@{finished}@{term.exit_code}"


class KubernetesWatcher:
    """Polls pods and pod metrics every `interval` seconds on its own thread.

    `scrape_components`: the roles whose pods' own /metrics are read on every poll ("all": every
    role). `api_client` is a kubernetes ApiClient (see `harness.kube.contexts.api_client`); the watcher
    closes it on stop() only if it made it (`for_context`).
    """

    def __init__(self, api_client: Any, *, namespace: str = "default", selector: str = DEFAULT_SELECTOR,
                 interval: float = 1.0, request_timeout: float = 5.0, metrics_timeout: float | None = None,
                 scrape_every: int = 1, scrape_components: Iterable[str] = ("streamingnode",),
                 max_backoff: float = MAX_BACKOFF) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.namespace = namespace
        self.selector = selector
        self.interval = interval
        self.request_timeout = request_timeout
        self.metrics_timeout = metrics_timeout if metrics_timeout is not None else request_timeout
        self.scrape_every = scrape_every
        self.scrape_components = frozenset(scrape_components)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._api_backoff = Backoff(interval, max_backoff)
        self._metrics_backoff = Backoff(interval, max_backoff)
        self._api_gap = Gap(API_COMPONENT, "Kubernetes API server")
        self._metrics_gap = Gap(METRICS_COMPONENT, "metrics API")
        self._owns_client = False
        self._context: RunEvents | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first = True  # the first successful poll adopts what happened before as history
        self._polls = 0
        self._pods: dict[str, _Pod] = {}
        self._slots: dict[str, dict[int, str]] = {}
        self._last_gone: dict[str, str] = {}
        self._restarts: dict[str, int] = {}
        self._scraped: dict[str, dict[str, float]] = {}
        self._samples = ContainerSamples()
        #: Failed API polls so far (tests and the live view read it).
        self.api_errors = 0

    @classmethod
    def for_context(cls, context_name: str, **kwargs: Any) -> "KubernetesWatcher":
        """A watcher on a kube context; the caller has already passed kube.check_context."""
        from harness.kube.contexts import api_client

        watcher = cls(api_client(context_name), **kwargs)
        watcher._owns_client = True
        return watcher

    # --- Watcher protocol ----------------------------------------------------------------

    def start(self, context: RunEvents) -> None:
        self._context = context
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kubernetes-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; safe to call twice. An in-flight request ends within its timeout."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(self.request_timeout, self.metrics_timeout) * 2 + 5)
        self._thread = None
        if self._owns_client:
            self._owns_client = False
            try:
                self.api_client.close()
            except Exception:  # closing is best effort
                log.debug("closing the API client failed", exc_info=True)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            ok = True
            try:
                ok = self.poll_once()
            except Exception:  # a bug in one poll must not end the watch
                log.exception("kubernetes watcher poll failed")
            if ok:
                delay = max(0.0, self.interval - (time.monotonic() - began))
            else:
                delay = max(0.0, self._api_backoff.not_before - time.monotonic())
            self._stop.wait(delay)

    # --- one poll ------------------------------------------------------------------------

    def poll_once(self, context: RunEvents | None = None) -> bool:
        """List pods and metrics once and fire samples and events; False when the API failed."""
        if context is not None:
            self._context = context
        ctx = self._context
        assert ctx is not None, "start(context) or poll_once(context) first"
        now = time.time()
        try:
            pods = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector,
                                                  _request_timeout=self.request_timeout).items or []
        except Exception as exc:  # ApiException, urllib3 errors, bad JSON: all are a gap
            self.api_errors += 1
            self._api_gap.fail(ctx, describe_error(exc))
            self._api_backoff.failed(time.monotonic())
            return False
        self._api_gap.ok()
        self._api_backoff.succeeded()
        live = self._update_pods(ctx, pods, now)
        usage = self._fetch_usage(ctx)
        if self.scrape_every and self._polls % self.scrape_every == 0:
            self._scrape(live)
        else:
            self._scraped.clear()  # fire /metrics samples only for a fresh read
        self._fire_samples(ctx, live, usage, time.time())
        self._first = False
        self._polls += 1
        return True

    def _update_pods(self, ctx: RunEvents, pods: list[Any], now: float) -> list[tuple[Any, _Pod]]:
        """Follow pods by uid: gone ones release their series, new ones take the lowest free."""
        listed = {(p.metadata.uid or p.metadata.name): p for p in pods}
        live = {uid: p for uid, p in listed.items() if self._is_live(p)}
        for uid in [u for u in self._pods if u not in live]:
            self._pod_gone(ctx, self._pods.pop(uid), listed.get(uid), now)
        result = []
        for uid, pod in sorted(live.items(), key=lambda item: item[1].metadata.name or ""):
            try:
                state = self._pods.get(uid) or self._pod_new(uid, pod)
                self._update_containers(ctx, state, pod, now)
                self._update_ready(ctx, state, pod, now)
                result.append((pod, state))
            except Exception:  # one odd pod must not hide the others
                log.exception("cannot follow pod %s", pod.metadata.name)
        return result

    @staticmethod
    def _is_live(pod: Any) -> bool:
        # A terminating pod's replacement is already being created: let it take the series.
        if pod.metadata.deletion_timestamp is not None:
            return False
        phase = pod.status.phase if pod.status is not None else None
        return phase not in ("Failed", "Succeeded")

    def _pod_new(self, uid: str, pod: Any) -> _Pod:
        labels = pod.metadata.labels or {}
        component = labels.get("component") or labels.get("app.kubernetes.io/component") or pod.metadata.name
        taken = self._slots.setdefault(component, {})
        slot = next(i for i in range(len(taken) + 1) if i not in taken)
        taken[slot] = uid
        names = [c.name for c in (pod.spec.containers if pod.spec is not None else None) or []]
        main = component if component in names else (names[0] if names else component)
        state = _Pod(uid=uid, name=pod.metadata.name, component=component, slot=slot, main=main,
                     replaces=None if self._first else self._last_gone.pop(component, None))
        self._pods[uid] = state
        return state

    def _pod_gone(self, ctx: RunEvents, state: _Pod, pod: Any, now: float) -> None:
        self._slots.get(state.component, {}).pop(state.slot, None)
        self._last_gone[state.component] = state.name
        status = pod.status if pod is not None else None
        if pod is None:
            how, reason = "is gone (deleted)", "Deleted"
        elif pod.metadata.deletion_timestamp is not None:
            how, reason = "is being deleted", "Deleting"
        elif status is not None and status.reason == "Evicted":
            how, reason = f"was evicted: {status.message or ''}".rstrip(": "), "Evicted"
        else:
            phase = status.phase if status is not None else "?"
            how = f"ended ({phase}{': ' + status.reason if status is not None and status.reason else ''})"
            reason = phase or "Ended"
        ctx.fire_event(component=state.series, type=events.EXITED, t=now, detail=f"pod {state.name} {how}",
                       data={"pod": state.name, "reason": reason})

    def _update_containers(self, ctx: RunEvents, state: _Pod, pod: Any, now: float) -> None:
        containers = (pod.spec.containers if pod.spec is not None else None) or []
        limits = {c.name: kube_reads.memory_limit(c) for c in containers}
        for cs in (pod.status.container_statuses if pod.status is not None else None) or []:
            last = cs.last_state.terminated if cs.last_state is not None else None
            current = cs.state.terminated if cs.state is not None else None
            terminated = [t for t in (last, current) if t is not None]
            waiting = cs.state.waiting.reason if cs.state is not None and cs.state.waiting is not None else None
            count = cs.restart_count or 0
            known = state.containers.get(cs.name)
            if known is None:
                known = state.containers[cs.name] = _Container()
                if self._first:  # history from before the watch: not this run's events
                    known.restart_count = count
                    known.terminations = {_termination_key(t) for t in terminated}
                    known.waiting = waiting
                    known.crash_loop_reported_at = count if waiting == CRASH_LOOP_BACK_OFF else -1
                    continue
            series = state.series_of(cs.name)
            # The termination first (it happened before the restart that follows it).
            for term in terminated:
                key = _termination_key(term)
                if key not in known.terminations:
                    known.terminations.add(key)
                    self._fire_termination(ctx, series, state, cs.name, term, limits.get(cs.name), now)
            if count > known.restart_count:
                new = count - known.restart_count
                self._restarts[series] = self._restarts.get(series, 0) + new
                running = cs.state.running if cs.state is not None else None
                # Not running yet (backing off): the restart follows the death kubelet kept.
                died = max((_ts(t.finished_at, now) for t in terminated), default=now)
                started = _ts(running.started_at if running is not None else None, died)
                ctx.fire_event(component=series, type=events.RESTARTED, t=started,
                               detail=f"container {cs.name} of pod {state.name} restarted"
                                      + (f" {new} times since the last look" if new > 1 else "")
                                      + f" (restartCount {count})",
                               # `restarts` is cumulative per series, as the embedded target's.
                               data={"pod": state.name, "container": cs.name, "restart_count": count,
                                     "restarts": self._restarts[series], "new_restarts": new})
                known.restart_count = count
            # Once per back-off: again after a new crash even if the short run in between was missed.
            if waiting == CRASH_LOOP_BACK_OFF and (known.waiting != waiting or count > known.crash_loop_reported_at):
                known.crash_loop_reported_at = count
                message = cs.state.waiting.message or ""
                ctx.fire_event(component=series, type=CRASH_LOOP_BACK_OFF, t=now,
                               detail=f"container {cs.name} of pod {state.name} is in CrashLoopBackOff"
                                      + (f": {message}" if message else ""),
                               data={"pod": state.name, "container": cs.name, "restart_count": count})
            known.waiting = waiting

    def _fire_termination(self, ctx: RunEvents, series: str, state: _Pod, container: str, term: Any,
                          limit: int | None, now: float) -> None:
        finished = term.finished_at
        data = {"pod": state.name, "container": container, "exit_code": term.exit_code,
                "reason": term.reason, "finished_at": finished.isoformat() if finished is not None else None,
                "limit_bytes": limit, "source": "kubelet"}
        if finished is not None and term.started_at is not None:  # how long it ran: a crash loop's measure
            data["up_s"] = round(_ts(finished, now) - _ts(term.started_at, now), 1)
        if term.reason == "OOMKilled":
            detail = (f"container {container} of pod {state.name} was OOM-killed (exit code {term.exit_code})"
                      + (f" at its {format_bytes(limit)} limit" if limit else ""))
            ctx.fire_event(component=series, type=events.OOM_KILLED, t=_ts(finished, now), detail=detail, data=data)
        else:
            crash = kube_reads.crash_signature(self._core, self.namespace, state.name, container, term.exit_code,
                                                self.request_timeout)
            if crash is not None:
                data["crash"] = crash.to_json()
            ctx.fire_event(component=series, type=events.EXITED, t=_ts(finished, now),
                           detail=f"container {container} of pod {state.name} terminated: "
                                  f"{term.reason or 'no reason given'} (exit code {term.exit_code})"
                                  + (f": {crash.line()}" if crash else ""),
                           data=data)

    def _update_ready(self, ctx: RunEvents, state: _Pod, pod: Any, now: float) -> None:
        conditions = (pod.status.conditions if pod.status is not None else None) or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        if ready and not state.ready and not self._first:
            ctx.fire_event(component=state.series, type=events.READY, t=now,
                           detail=f"pod {state.name} is ready" + (f" (replaces {state.replaces})" if state.replaces else ""),
                           data={"pod": state.name, "replaces": state.replaces})
        state.ready = ready

    # --- memory --------------------------------------------------------------------------

    def _fetch_usage(self, ctx: RunEvents) -> kube_reads.Usage | None:
        """Each container's working set (kube_reads.pod_usage); None while the metrics API is in a gap."""
        if not self._metrics_backoff.due(time.monotonic()):
            return None
        try:
            usage = kube_reads.pod_usage(self._custom, self.namespace, self.selector, self.metrics_timeout)
        except Exception as exc:
            self._metrics_gap.fail(ctx, describe_error(exc))
            self._metrics_backoff.failed(time.monotonic())
            return None
        self._metrics_gap.ok()
        self._metrics_backoff.succeeded()
        return usage

    def _scrape(self, live: list[tuple[Any, _Pod]]) -> None:
        """Each pod of a role under test: its own /metrics through the API server's pod proxy."""
        for pod, state in live:
            if state.component not in self.scrape_components and "all" not in self.scrape_components:
                continue
            try:
                text = kube_reads.pod_metrics_text(self._core, self.namespace, state.name, self.metrics_timeout)
                self._scraped[state.uid] = parse_metrics(text)
            except Exception as exc:  # restarting pod: keep nothing rather than stale figures
                log.debug("scraping %s failed: %s", state.name, exc)
                self._scraped.pop(state.uid, None)

    def fetch_heap(self, component: str, timeout: float) -> bytes | None:
        """A pod's Go heap profile through the API server's pod proxy, for the series `component`
        of a role under test (harness.profiles.capture.HeapProfiled); None for other series."""
        if "/" in component:  # a side container's series: not a Milvus process
            return None
        state = next((p for p in list(self._pods.values()) if p.series == component), None)
        role = state.component if state is not None else component.rsplit("-", 1)[0]
        if role not in self.scrape_components and "all" not in self.scrape_components:
            return None
        if state is None:  # between a pod's death and its replacement
            raise LookupError(f"no live pod for {component}")
        return kube_reads.pod_heap(self._core, self.namespace, state.name, timeout)

    def _fire_samples(self, ctx: RunEvents, live: list[tuple[Any, _Pod]],
                      usage: kube_reads.Usage | None, now: float) -> None:
        for pod, state in live:
            for container in (pod.spec.containers if pod.spec is not None else None) or []:
                series = state.series_of(container.name)
                self._samples.fire(
                    ctx, series=series, pod=state.name, container=container.name,
                    limit=kube_reads.memory_limit(container), restarts=self._restarts.get(series, 0),
                    measured=usage.get((state.name, container.name)) if usage is not None else None,
                    metrics=self._scraped.get(state.uid) if container.name == state.main else None, now=now)
