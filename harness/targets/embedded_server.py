"""One embedded Milvus process: milvus.yaml rendered from the package's template with free
ports and the run's overrides, its logs, its process group, and the crash signature of its death.

The supervision (restarts, readiness, the run's events) is the target's: targets/embedded.py.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness.targets.cgroup import MemoryCgroup
from harness.errors import UsageError
from harness.procs import interrupts_deferred
from harness.targets import install as installs
from harness.targets.net import free_ports
from harness.watch import crash_log

log = logging.getLogger(__name__)

#: Template placeholders that are listening ports, plus the metrics port passed by env.
_PORT_KEYS = ("etcd_port", "etcd_peer_port", "proxy_port", "proxy_internal_port", "root_coord_port", "query_coord_port",
              "query_node_port", "index_coord_port", "index_node_port", "data_coord_port", "data_node_port")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*(?:\(([a-z]+)\))?\s*(?::\s*([^}]*?))?\s*\}\}")

def how_it_ended(code: int) -> str:
    """How a process ended, from its return code: 'signal SIGABRT' or 'exit code 2'."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def render_config(template: str, values: dict[str, Any], overrides: dict[str, Any],
                  internal: dict[str, Any] | None = None) -> str:
    """Fill the package's milvus.yaml template and apply dotted overrides.

    A user override whose parent section does not exist in this version's milvus.yaml is
    refused, naming the key, so a typo does not silently test the default; the harness's own
    `internal` keys may create sections.
    """

    def fill(match: re.Match[str]) -> str:
        key, default = match.group(1), match.group(3)
        if key in values:
            value = values[key]
            return ("true" if value else "false") if isinstance(value, bool) else str(value)
        return (default or "").strip()

    config = yaml.safe_load(_PLACEHOLDER.sub(fill, template))
    for dotted, value in (internal or {}).items():
        _set_dotted(config, dotted, value, create=True)
    for dotted, value in overrides.items():
        _set_dotted(config, dotted, value, create=False)
    return yaml.safe_dump(config, sort_keys=False)


def _set_dotted(config: dict[str, Any], dotted: str, value: Any, create: bool) -> None:
    node = config
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        if not isinstance(child, dict):
            known = ", ".join(sorted(node))
            where = ".".join(parts[: i + 1])
            raise UsageError(f"--milvus-config {dotted}: milvus.yaml has no section {where!r}; "
                             f"known at that level: {known}")
        node = child
    node[parts[-1]] = value


class EmbeddedServer:
    """One `milvus run standalone` process tree with its ports, config and data dir."""

    def __init__(self, install: installs.Install, data_dir: Path, log_dir: Path,
                 overrides: dict[str, Any], cgroup: MemoryCgroup | None) -> None:
        self.install = install
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.cgroup = cgroup
        self.proc: subprocess.Popen[bytes] | None = None
        ports = free_ports(len(_PORT_KEYS) + 1)
        self.ports = dict(zip(_PORT_KEYS, ports))
        self.metrics_port = ports[-1]
        self.starts = 0
        self.log_starts: dict[Path, int] = {}  # where the live process's output begins in each log
        self._write_config(overrides)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['proxy_port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd_port']}"

    def _write_config(self, overrides: dict[str, Any]) -> None:
        storage = self.data_dir / "data"
        for path in (self.data_dir / "configs", storage, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        values: dict[str, Any] = dict(self.ports)
        values.update(
            etcd_log_path=str(self.log_dir / "etcd.log"), system_log_path=str(self.log_dir),
            etcd_data_dir=str(storage / "etcd.data"), local_storage_dir=str(storage),
            rocksmq_data_dir=str(storage / "rocksmq"),
            rocketmq_data_dir=str(storage / "rocksmq"),  # the 2.2.x templates' spelling
        )
        # Embedded etcd listens on 2379/2380 in every server unless given its own config file.
        # It skips fsync: a killed server's writes survive in the page cache (only a crash of
        # the machine would lose them), and at ~10 ms per fsync here each restart's flush of
        # hundreds of segments waited on its own metadata writes.
        etcd_config = self.data_dir / "configs" / "embedEtcd.yaml"
        client = f"http://127.0.0.1:{self.ports['etcd_port']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer_port']}"
        etcd_config.write_text(yaml.safe_dump({
            "listen-client-urls": client, "advertise-client-urls": client,
            "listen-peer-urls": peer, "initial-advertise-peer-urls": peer,
            "initial-cluster": f"default={peer}", "unsafe-no-fsync": True,
        }))
        text = render_config(self.install.config_template.read_text(), values, overrides,
                             internal={"etcd.config.path": str(etcd_config)})
        (self.data_dir / "configs" / "milvus.yaml").write_text(text)
        etcd = yaml.safe_load(text)["etcd"]
        self.session_prefix = f"{etcd['rootPath']}/{etcd['metaSubPath']}/session/"
        if self.install.glog_conf.exists():  # the 2.2.x packages ship none
            shutil.copy(self.install.glog_conf, self.data_dir / "configs" / "glog.conf")

    def start(self) -> int:
        """Spawn the server (in the cgroup before it execs, in its own process group)."""
        env = dict(os.environ)
        env.update(DEPLOY_MODE="STANDALONE", METRICS_PORT=str(self.metrics_port),
                   MILVUS_RUN_DIR=str(self.data_dir / "run"), MILVUSCONF=str(self.data_dir / "configs"),
                   LD_LIBRARY_PATH=f"{self.install.lib_dir}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        self.starts += 1
        out = open(self.log_dir / "milvus-stdout.log", "ab")
        err = open(self.log_dir / "milvus-stderr.log", "ab")
        self.log_starts = {Path(f.name): f.seek(0, 2) for f in (out, err)}
        cgroup = self.cgroup
        try:
            with interrupts_deferred():  # a server spawned but not recorded would never be stopped
                self.proc = subprocess.Popen(
                    [str(self.install.binary), "run", "standalone"], cwd=self.data_dir, env=env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    preexec_fn=cgroup.add_self if cgroup else None,
                )
        finally:
            out.close()
            err.close()
        return self.proc.pid

    def crash_signature(self) -> crash_log.CrashSignature | None:
        """The panic or assertion in what the last process wrote before it died (read once
        it is reaped and no process of its group is left: crash_log.signature_after_exit)."""
        return crash_log.signature_after_exit(self.proc, self.log_starts)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; every process of the group is ended."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                proc.wait(timeout=10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group
        except (ProcessLookupError, PermissionError):
            pass
