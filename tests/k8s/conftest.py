"""Fixtures of the Kubernetes tests: the fake API server, a kubeconfig, stand-in executables.

Each fixture cleans up (server closed, watchers stopped, stand-in processes ended) even when
the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.watch.events import RunEvents, Sample

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from k8s_fakes import FakeKubeAPI, write_kubeconfig  # noqa: E402

TOOLS = ("docker", "kind", "helm", "kubectl")


@pytest.fixture
def fake_api() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI()
    api.up()
    try:
        yield api
    finally:
        api.down()


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_api: FakeKubeAPI) -> Path:
    """KUBECONFIG with kind-test and kind-milvus-harness on the fake API, and a remote some-prod."""
    path = write_kubeconfig(tmp_path / "kubeconfig", {
        "kind-test": fake_api.url,
        "kind-milvus-harness": fake_api.url,
        "some-prod": "https://10.20.30.40:6443",
        "kind-remote": "https://milvus-harness-control-plane:6443",
    })
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


class Recorded:
    """A RunEvents with every sample kept, for assertions."""

    def __init__(self) -> None:
        self.context = RunEvents()
        self.samples: list[Sample] = []
        self.context.on_sample(self.samples.append)

    @property
    def events(self) -> list[Any]:
        return list(self.context.events)

    def types(self, component: str | None = None) -> list[str]:
        return [e.type for e in self.events if component is None or e.component == component]

    def last(self, component: str) -> Sample:
        return [s for s in self.samples if s.component == component][-1]


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def make_watcher(kubeconfig: Path) -> Iterator[Any]:
    """Build KubernetesWatchers on the fake API through the kubeconfig; all stopped afterwards."""
    from harness.watch.kubernetes import KubernetesWatcher

    made: list[KubernetesWatcher] = []

    def make(**kwargs: Any) -> KubernetesWatcher:
        kwargs.setdefault("interval", 0.05)
        kwargs.setdefault("request_timeout", 2.0)
        watcher = KubernetesWatcher.for_context("kind-test", **kwargs)
        made.append(watcher)
        return watcher

    try:
        yield make
    finally:
        for watcher in made:
            watcher.stop()


class Standins:
    """Executables named kind, helm, kubectl, docker that record argv and answer from rules."""

    def __init__(self, root: Path, tools: tuple[str, ...]) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.rules: list[dict[str, Any]] = []
        self._save()
        for tool in tools:
            path = self.bin / tool
            path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\n"
                            f"from standin import main\nmain({tool!r}, {str(root)!r})\n")
            path.chmod(0o755)

    def on(self, tool: str, *prefix: str, contains: tuple[str, ...] = (), stdout: str = "", stderr: str = "",
           exit: int = 0, times: int | None = None, serve: bool = False) -> None:
        """Answer calls of `tool` whose args start with `prefix` and contain `contains`."""
        self.rules.append({"tool": tool, "prefix": list(prefix), "contains": list(contains), "stdout": stdout,
                           "stderr": stderr, "exit": exit, "times": times, "serve": serve})
        self._save()

    def _save(self) -> None:
        (self.root / "rules.json").write_text(json.dumps(self.rules))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        log = self.root / "calls.jsonl"
        if not log.exists():
            return []
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return [c for c in calls if tool is None or c[0] == tool]

    def kill_servers(self) -> None:
        pid_file = self.root / "serve.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Standins]:
    """Stand-ins on a PATH that holds nothing else (a real kubectl must never be reached)."""
    s = Standins(tmp_path / "standins", TOOLS)
    monkeypatch.setenv("PATH", str(s.bin))
    try:
        yield s
    finally:
        s.kill_servers()


def make_standins(root: Path, tools: tuple[str, ...]) -> Standins:
    return Standins(root, tools)
