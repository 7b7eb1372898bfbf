"""The Helm values of one install: the cluster's stored base + the image's own + this run's flags.

`cluster up` stores the base (the profile plus the user's values files) in a ConfigMap of the
release's namespace. Every install, by `cluster up`, a run or a bisect step, is rebuilt from
that base: nothing of a previous run's flags (--memory-limit, --milvus-config, the tag)
carries into the next, which reading back `helm get values` would do.

The image's own values follow its build date, read from master-YYYYMMDD-<commit> tags
(facts checked against zilliztech/milvus-helm milvus-4.2.58 and milvus-5.0.19):
- master builds before milvus PR #40272 (IndexNode merged into DataNode, merged 2025-03-13)
  still run a separate IndexNode: `indexNode.enabled: true` (the 5.0.x chart's default is
  false, the 4.2.x chart's true);
- master builds before STREAMING_ENV_UNTIL read MILVUS_STREAMING_SERVICE_ENABLED on every
  component (milvus PR #34655 added the switch; issue #41609 still tracked its removal in
  June 2025). Chart 5.0.19 sets it only on the streaming node's own container, so the other
  Milvus components get it through their `extraEnv`; where the server no longer reads it, it
  is ignored. Chart 4.2.x sets it on every component itself once `streaming.enabled`.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import yaml

from harness.errors import TargetError, UsageError
from harness.targets.milvus_config import nested

#: Master images built before this day still run the IndexNode role (milvus PR #40272).
INDEX_NODE_MERGED = dt.date(2025, 3, 13)
#: Master images built before this day get the streaming switch on every component.
STREAMING_ENV_UNTIL = dt.date(2025, 6, 6)
STREAMING_ENV = "MILVUS_STREAMING_SERVICE_ENABLED"
#: Values sections of the Milvus components that are not the streaming node.
OTHER_COMPONENTS = ("proxy", "mixCoordinator", "dataNode", "queryNode", "indexNode")
DEFAULT_REPOSITORY = "milvusdb/milvus"
_MASTER = re.compile(r"^master-(\d{8})-([0-9a-f]{7,40})$")
_LINE_2_5 = re.compile(r"^v?2\.5([.-].*)?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")


def build_date(tag: str) -> dt.date | None:
    """The build day of a master-YYYYMMDD-<commit> tag; None for release tags."""
    match = _MASTER.match(tag)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        raise UsageError(f"--milvus-version {tag!r}: {match.group(1)} is not a date (master-YYYYMMDD-<commit>)") from None


def master_commit(tag: str) -> str | None:
    """The commit of a master-YYYYMMDD-<commit> tag."""
    match = _MASTER.match(tag)
    return match.group(2) if match else None


def check_repository(repository: str) -> str:
    """An image repository (registry/path, lower case), or a UsageError line."""
    if not _REPOSITORY.match(repository):
        raise UsageError(f"--image-repository {repository!r} is not an image repository "
                         f"(e.g. {DEFAULT_REPOSITORY} or localhost:5000/milvus)")
    return repository


def image_values(tag: str, repository: str = DEFAULT_REPOSITORY) -> dict[str, Any]:
    """What the chart needs for this image: repository and tag, and the build-date switches."""
    values: dict[str, Any] = {"image": {"all": {"repository": repository, "tag": tag}}}
    if _LINE_2_5.match(tag):
        values["streaming"] = {"enabled": True}  # the 4.2.x chart's default is false
    built = build_date(tag)
    if built is not None and built < INDEX_NODE_MERGED:
        values["indexNode"] = {"enabled": True}
    return values


def needs_streaming_env(tag: str) -> bool:
    built = build_date(tag)
    return built is not None and built < STREAMING_ENV_UNTIL


def run_values(memory_limit: int | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """This run's own flags as values: the streaming nodes' limit and milvus.yaml overrides."""
    values: dict[str, Any] = {}
    if memory_limit:
        values["streamingNode"] = {"resources": {"limits": {"memory": str(memory_limit)}}}
    if overrides:
        values["extraConfigFiles"] = {"user.yaml": yaml.safe_dump(nested(overrides), sort_keys=False)}
    return values


def merge(*trees: dict[str, Any]) -> dict[str, Any]:
    """Later trees over earlier ones, maps merged key by key; nothing given is modified."""
    result: dict[str, Any] = {}
    for tree in trees:
        for key, value in tree.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merge(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def effective_values(base: dict[str, Any], tag: str, repository: str = DEFAULT_REPOSITORY,
                     memory_limit: int | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """base + the image's values + this run's flags: exactly what one install applies."""
    base = {k: v for k, v in base.items() if k != "image"}  # the image comes from the flags only
    values = merge(base, image_values(tag, repository), run_values(memory_limit, overrides or {}))
    if needs_streaming_env(tag):
        for section in OTHER_COMPONENTS:
            part = values.setdefault(section, {})
            env = [e for e in part.get("extraEnv") or [] if e.get("name") != STREAMING_ENV]
            part["extraEnv"] = env + [{"name": STREAMING_ENV, "value": "1"}]
    return values


def streaming_replicas(values: dict[str, Any]) -> int:
    """How many streaming nodes these values ask for (the chart's default is 1)."""
    replicas = (values.get("streamingNode") or {}).get("replicas", 1)
    try:
        return max(0, int(replicas))
    except (TypeError, ValueError):
        return 1


# --- the base, stored in the cluster ----------------------------------------------------------

VALUES_KEY = "values.yaml"
SOURCE_KEY = "source"


def configmap_name(release: str) -> str:
    return f"{release}-harness-base-values"


def store_base(api_client: Any, namespace: str, release: str, values: dict[str, Any], source: str) -> None:
    """Create or replace the release's base-values ConfigMap."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    name = configmap_name(release)
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace,
                                     labels={"app.kubernetes.io/managed-by": "milvus-harness",
                                             "milvus-harness/release": release}),
        data={VALUES_KEY: yaml.safe_dump(values, sort_keys=False), SOURCE_KEY: source})
    try:
        try:
            core.replace_namespaced_config_map(name, namespace, body, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_config_map(namespace, body, _request_timeout=30)
    except Exception as exc:
        raise TargetError(f"cannot store the base values in ConfigMap {namespace}/{name}: {_reason(exc)}") from None


def read_base(api_client: Any, namespace: str, release: str) -> tuple[dict[str, Any], str] | None:
    """(values, source) from the release's base-values ConfigMap; None when there is none."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = configmap_name(release)
    try:
        found = client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace, _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise TargetError(f"cannot read the base values (ConfigMap {namespace}/{name}): {_reason(exc)}") from None
    except Exception as exc:
        raise TargetError(f"cannot read the base values (ConfigMap {namespace}/{name}): {_reason(exc)}") from None
    data = found.data or {}
    try:
        values = yaml.safe_load(data.get(VALUES_KEY) or "") or {}
    except yaml.YAMLError:
        values = None
    if not isinstance(values, dict):
        raise TargetError(f"ConfigMap {namespace}/{name} holds no values mapping; run `milvus-harness cluster up` again")
    return values, str(data.get(SOURCE_KEY) or "?")


def _reason(exc: BaseException) -> str:
    from harness.watch.kube_api import describe_error

    return describe_error(exc)
