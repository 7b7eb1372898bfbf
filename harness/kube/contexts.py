"""Kube contexts as kubectl finds them, and the safety check that keeps load tests on kind.

A load test must never reach a production cluster by mistake. A context is accepted when
it looks like one kind made (named ``kind-<cluster>``, API server on a loopback address),
or when ``--allow-context`` names it exactly. The name is checked before the kubeconfig is
read, so an obviously foreign context is refused before anything else happens.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.errors import TargetError, UsageError
from harness.targets.protocol import TargetOptions

log = logging.getLogger(__name__)

#: The kind cluster `cluster up` creates and `--target kind` uses unless told otherwise.
DEFAULT_CLUSTER = "milvus-harness"
KIND_PREFIX = "kind-"


def kind_context(cluster: str = DEFAULT_CLUSTER) -> str:
    """The context name kind writes for a cluster."""
    return KIND_PREFIX + cluster


def kubeconfig_paths() -> list[Path]:
    """Kubeconfig files in kubectl's order: $KUBECONFIG (a path list), else ~/.kube/config.

    Read at call time, not import time (the kubernetes client freezes $KUBECONFIG when it is
    imported), so tests and long-lived processes see the current environment.
    """
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _config_file_arg() -> str:
    # The kubernetes client merges a path list split on os.pathsep, as kubectl does.
    return os.pathsep.join(str(p) for p in kubeconfig_paths())


def list_contexts() -> dict[str, dict[str, Any]]:
    """Every context of the merged kubeconfig, by name, with its cluster's server URL.

    Merged as kubectl merges: files in order, the first file to define a name wins.
    """
    clusters: dict[str, dict[str, Any]] = {}
    contexts: dict[str, str] = {}
    for path in kubeconfig_paths():
        if not path.exists():
            continue  # kubectl skips missing entries of $KUBECONFIG too
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read kubeconfig {path}: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"cannot read kubeconfig {path}: not a YAML mapping")
        for entry in data.get("clusters") or []:
            if isinstance(entry, dict) and str(entry.get("name")) not in clusters:
                clusters[str(entry.get("name"))] = entry.get("cluster") or {}
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and str(entry.get("name")) not in contexts:
                contexts[str(entry.get("name"))] = str((entry.get("context") or {}).get("cluster"))
    return {name: {"cluster": cluster, "server": str(clusters.get(cluster, {}).get("server", ""))}
            for name, cluster in contexts.items()}


def is_loopback_server(server: str) -> bool:
    """True when an API server URL points at this machine (127.0.0.0/8, ::1, localhost)."""
    return is_loopback_host(urlsplit(server if "//" in server else f"//{server}").hostname or "")


def is_loopback_host(host: str) -> bool:
    """True when a host name or address is this machine, decided without any lookup:
    an address in 127.0.0.0/8 or ::1, or the name localhost."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_kube_context(name: str, allow: str | None = None, *, hint: str = "") -> None:
    """Refuse a context that is not a local kind cluster, unless `allow` names it exactly.

    Raises UsageError (one line, exit 2). The name test comes first and needs no file, so
    `--kube-context some-prod` is refused before the kubeconfig is even read.
    """
    allowed = allow is not None and allow == name
    if not allowed and not name.startswith(KIND_PREFIX):
        raise UsageError(
            f"refusing kube context {name!r}: it is not a kind cluster (kind-<name> serving on a "
            f"loopback address); a load test must not reach another cluster by mistake; "
            f"pass --allow-context {name} if you mean it")
    contexts = list_contexts()
    if name not in contexts:
        where = ", ".join(str(p) for p in kubeconfig_paths())
        known = ", ".join(sorted(contexts)) or "none"
        raise UsageError(f"kube context {name!r} is not in {where} (known: {known})" + (f"; {hint}" if hint else ""))
    server = contexts[name]["server"]
    if not allowed and not is_loopback_server(server):
        raise UsageError(
            f"refusing kube context {name!r}: its API server {server} is not on a loopback address, "
            f"so it is not a local kind cluster; pass --allow-context {name} if you mean it")


def context_for(options: TargetOptions) -> str | None:
    """The kube context a target uses: kind defaults to kind-milvus-harness; external only if given."""
    if options.target == "kind":
        return options.kube_context or kind_context()
    if options.target == "external":
        return options.kube_context
    return None


def check_context(options: TargetOptions) -> str | None:
    """Validate the kube context of run / ui / matrix / bisect before anything starts.

    Returns the context the target will use (None when it uses none). For --target kind a
    missing context means the cluster was never created, and the error says so.
    """
    name = context_for(options)
    if name is None:
        if options.allow_context:
            raise UsageError("--allow-context needs --kube-context (it only allows the context it names)")
        return None
    hint = "run `milvus-harness cluster up` first" if options.target == "kind" else ""
    check_kube_context(name, options.allow_context, hint=hint)
    return name


def api_client(context: str, *, retries: int = 0) -> Any:
    """A kubernetes ApiClient for one context, loaded as kubectl would (no retries of its own:
    the watcher has its back-off). Translates kubeconfig errors into TargetError."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=_config_file_arg(), context=context,
                                client_configuration=configuration, persist_config=False)
    except Exception as exc:  # ConfigException, missing cert files, exec plugins failing
        raise TargetError(f"cannot load kube context {context!r}: {exc}") from None
    configuration.retries = retries
    return client.ApiClient(configuration=configuration)
