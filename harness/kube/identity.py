"""Is the address the harness will load the kind release it installed?

Two facts decide it before any row is sent: the kind node publishes the Milvus NodePort on
that host port (`docker port`), and the server's own GetVersion names the build the tag asked
for. Another Milvus that happens to listen on 127.0.0.1:19530 fails one or the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.kube import values as chart_values
from harness.procs import run_command

MATCH, MISMATCH, UNVERIFIED = "match", "mismatch", "unverified"
_HEX = re.compile(r"(?<![0-9a-f])[0-9a-f]{7,40}(?![0-9a-f])")
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?![\d])")


@dataclass(frozen=True)
class BuildCheck:
    """The server's reported version against the image tag asked for."""

    status: str  # match | mismatch | unverified
    detail: str


def check_build(tag: str, reported: str) -> BuildCheck:
    """Release tags: the same X.Y.Z. Master tags: the same commit, when the version names one."""
    text = reported.strip()
    commit = chart_values.master_commit(tag)
    if commit is not None:
        hashes = [h for h in _HEX.findall(text.lower()) if not h.isdigit()]
        if not hashes:
            return BuildCheck(UNVERIFIED, f"server version {text!r} names no commit to compare with {commit}")
        if any(h.startswith(commit) or commit.startswith(h) for h in hashes):
            return BuildCheck(MATCH, f"server version {text!r} is commit {commit}")
        return BuildCheck(MISMATCH, f"the server reports {text!r}, not a build of commit {commit} ({tag})")
    wanted, got = _RELEASE.match(tag), _RELEASE.match(text)
    if wanted is None:
        return BuildCheck(UNVERIFIED, f"tag {tag!r} names no version to compare with {text!r}")
    if got is not None and got.groups() == wanted.groups():
        return BuildCheck(MATCH, f"server version {text!r}")
    return BuildCheck(MISMATCH, f"the server reports {text!r}, not {tag}")


def node_name(cluster: str) -> str:
    """kind's control-plane node container, which holds extraPortMappings."""
    return f"{cluster}-control-plane"


def host_ports(cluster: str, node_port: int) -> list[str]:
    """Where the kind node publishes `node_port` on the host ("127.0.0.1:19530"), per `docker port`."""
    result = run_command(["docker", "port", node_name(cluster), f"{node_port}/tcp"], timeout=60, check=False,
                         what=f"read the port mapping of kind node {node_name(cluster)}")
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def maps(published: list[str], host: str, port: int) -> bool:
    """True when one of `docker port`'s lines publishes host:port (0.0.0.0 / [::] count for any host)."""
    for line in published:
        address, _, number = line.rpartition(":")
        if number == str(port) and address in (host, "0.0.0.0", "[::]", "::"):
            return True
    return False
