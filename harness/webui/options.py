"""Where `milvus-harness ui` listens and how it is guarded: --web-host/--web-port/--web-login/--web-auth,
checked before anything starts."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from harness.errors import UsageError


@dataclass(frozen=True)
class WebOptions:
    """Where the web UI listens and how it is guarded."""

    host: str = "127.0.0.1"
    port: int = 8089
    #: "user:password" for Locust's login page (--web-login) ...
    login: str | None = None
    #: ... or for HTTP basic auth on every page and route (--web-auth).
    auth: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise UsageError(f"--web-port {self.port} is out of range: 1 to 65535")
        if self.login and self.auth:
            raise UsageError("--web-login and --web-auth exclude each other; choose one")
        for flag, value in (("--web-login", self.login), ("--web-auth", self.auth)):
            if value is not None:
                user, _, password = value.partition(":")
                if not user or not password:
                    raise UsageError(f"{flag} {value!r} is not USER:PASSWORD")

    @property
    def guarded(self) -> bool:
        return bool(self.login or self.auth)

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{self.port}"


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def hold_port(web: WebOptions) -> socket.socket:
    """Listen on the web port before anything starts, and hand the socket back to be closed
    just before Locust binds: a taken port is refused at once, and the free ports chosen for
    Milvus in between cannot land on it (a Go server answering 404 there looked like a ready UI).
    """
    family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((web.host.strip("[]"), web.port))
        sock.listen(1)
    except OSError as exc:
        sock.close()
        raise UsageError(f"the web UI cannot listen on {web.host or '0.0.0.0'}:{web.port}: "
                         f"{exc.strerror or exc} (choose another --web-port or --web-host)") from None
    return sock


def bind_warning(web: WebOptions) -> str | None:
    """The one-line warning for a web UI that other machines reach without a password."""
    if is_loopback(web.host) or web.guarded:
        return None
    return (f"warning: the web UI on {web.host or '0.0.0.0'}:{web.port} is reachable from other machines "
            "and has no login: anyone who reaches it can start load against Milvus "
            "(add --web-login USER:PASSWORD or --web-auth USER:PASSWORD)")
