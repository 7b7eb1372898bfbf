"""Kubeconfig loading as kubectl does, and the refusal of contexts that are not local kind clusters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.kube import contexts
from harness.cli import main
from harness.errors import UsageError
from harness.targets.protocol import TargetOptions
from k8s_fakes import write_kubeconfig

REPO = Path(__file__).resolve().parents[2]


def test_kubeconfig_paths_follow_kubectl(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a{os.pathsep}{os.pathsep}{tmp_path}/b")
    assert contexts.kubeconfig_paths() == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert contexts.kubeconfig_paths() == [tmp_path / ".kube" / "config"]
    monkeypatch.setenv("KUBECONFIG", "")  # empty is unset, as for kubectl
    assert contexts.kubeconfig_paths() == [tmp_path / ".kube" / "config"]


def test_default_kubeconfig_and_merge_first_file_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    write_kubeconfig(tmp_path / ".kube" / "config", {"kind-home": "https://127.0.0.1:40000"})
    assert contexts.list_contexts()["kind-home"]["server"] == "https://127.0.0.1:40000"

    first = write_kubeconfig(tmp_path / "first", {"kind-x": "https://127.0.0.1:1"})
    second = write_kubeconfig(tmp_path / "second", {"kind-x": "https://10.0.0.9:6443", "kind-y": "https://[::1]:2"})
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{second}")
    found = contexts.list_contexts()
    assert found["kind-x"]["server"] == "https://127.0.0.1:1"  # the first file's definition
    assert found["kind-y"]["server"] == "https://[::1]:2"
    assert "kind-home" not in found


@pytest.mark.parametrize("server, loopback", [
    ("https://127.0.0.1:6443", True), ("https://127.3.4.5:1", True), ("https://localhost:6443", True),
    ("https://[::1]:6443", True), ("https://0.0.0.0:6443", False), ("https://10.1.2.3:6443", False),
    ("https://milvus-harness-control-plane:6443", False), ("https://k8s.example.com", False),
])
def test_loopback_servers(server, loopback):
    assert contexts.is_loopback_server(server) is loopback


def test_only_local_kind_contexts_pass_unless_named(kubeconfig):
    contexts.check_kube_context("kind-test")  # kind name, loopback server
    with pytest.raises(UsageError, match="refusing kube context 'some-prod': it is not a kind cluster"):
        contexts.check_kube_context("some-prod")
    with pytest.raises(UsageError, match="API server https://milvus-harness-control-plane:6443 is not on a loopback"):
        contexts.check_kube_context("kind-remote")  # named like kind, but not on this machine
    with pytest.raises(UsageError, match="--allow-context some-prod"):
        contexts.check_kube_context("some-prod", allow="some-pro")  # must name it exactly
    contexts.check_kube_context("some-prod", allow="some-prod")
    contexts.check_kube_context("kind-remote", allow="kind-remote")
    with pytest.raises(UsageError, match=r"kube context 'kind-typo' is not in .*known: kind-milvus-harness, kind-remote"):
        contexts.check_kube_context("kind-typo")


def test_foreign_context_is_refused_without_reading_the_kubeconfig(tmp_path, monkeypatch):
    bad = tmp_path / "kubeconfig"
    bad.write_text("{{{ not yaml")
    monkeypatch.setenv("KUBECONFIG", str(bad))
    with pytest.raises(UsageError, match="refusing kube context 'some-prod'"):
        contexts.check_context(TargetOptions(target="external", kube_context="some-prod", uri="http://127.0.0.1:1"))
    with pytest.raises(UsageError, match="cannot read kubeconfig"):
        contexts.check_context(TargetOptions(target="kind"))


def test_check_context_per_target(kubeconfig, monkeypatch):
    assert contexts.check_context(TargetOptions(target="embedded")) is None
    assert contexts.check_context(TargetOptions(target="external", uri="http://127.0.0.1:1")) is None
    assert contexts.check_context(TargetOptions(target="kind")) == "kind-milvus-harness"
    assert contexts.check_context(TargetOptions(target="external", kube_context="some-prod",
                                            allow_context="some-prod")) == "some-prod"
    with pytest.raises(UsageError, match="--allow-context needs --kube-context"):
        contexts.check_context(TargetOptions(target="external", allow_context="some-prod"))
    write_kubeconfig(kubeconfig, {"kind-other": "https://127.0.0.1:9"})
    with pytest.raises(UsageError, match="run `milvus-harness cluster up` first"):
        contexts.check_context(TargetOptions(target="kind"))


def test_api_client_loads_the_context(kubeconfig, fake_api):
    client = contexts.api_client("kind-test")
    try:
        assert client.configuration.host == fake_api.url
        assert client.configuration.retries == 0  # the watcher's back-off is the only retry
    finally:
        client.close()


def _run_cli(args: list[str], tmp_path: Path, path_dir: Path, kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}
    env.update(PATH=str(path_dir), HOME=str(tmp_path), PYTHONPATH=str(REPO))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["run", "--target", "external", "--uri", "http://127.0.0.1:19530", "--kube-context", "some-prod"],
    ["run", "--target", "kind", "--kube-context", "some-prod"],
    ["watch", "--target", "external", "--kube-context", "some-prod"],
    ["watch", "--kube-context", "some-prod"],
])
def test_production_context_refused_with_exit_2_before_anything_starts(args, tmp_path, standins, kubeconfig):
    result = _run_cli([*args, *(["--report-dir", "reports"] if args[0] == "run" else ["--out", "watched"])],
                      tmp_path, standins.bin, kubeconfig)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing kube context 'some-prod'" in lines[0], result.stderr
    assert "--allow-context some-prod" in lines[0]
    assert standins.calls() == []  # no kind, helm, kubectl, docker
    assert not (tmp_path / "reports").exists() and not (tmp_path / "watched").exists()
    assert not any("Traceback" in line for line in lines)


def test_refusal_in_process_too(tmp_path, monkeypatch, capsys, kubeconfig, fake_api):
    code = main(["run", "--target", "external", "--uri", "http://127.0.0.1:19530", "--kube-context", "some-prod",
                 "--report-dir", str(tmp_path / "reports")])
    assert code == 2
    assert "refusing kube context 'some-prod'" in capsys.readouterr().err
    assert fake_api.requests == [] and not (tmp_path / "reports").exists()
