"""The insert locustfile's own options, as Locust custom arguments, and the settings they make.

`locust -f locustfiles/milvus_insert.py --host http://HOST:19530 --scenario smoke --set total_rows=200000`:
the options are registered on Locust's parser (so `--help`, locust.conf and the web UI's start
form know them) and read back as LoadSettings, validated like `milvus-harness run` validates
the same flags: a bad value is one clear line, refused before anything is sent.
No Locust import here: the parser is handed in.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.errors import UsageError
from harness.load.dispenser import LoadPause, ServerDown
from harness.milvus_client import Connection, Credentials
from harness.scenario import model as scenarios

CREATE, REUSE = "create", "reuse"
COLLECTION_MODES = (CREATE, REUSE)
DEFAULT_ACKS = "acks.jsonl"
#: The options the start form shows (Locust's custom arguments with include_in_web_ui).
FORM_OPTIONS = ("scenario", "set", "collection_mode", "user", "password", "token", "db_name", "tls_ca")
#: Where --set's pairs split in one text (the web form, a comma list): only before a `key=`,
#: so a value holding commas (rules.under_test=datanode,querynode) stays whole.
_PAIRS = re.compile(r"[,\s]+(?=[A-Za-z_][\w.]*=)")


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser (events.init_command_line_parser)."""
    # On the parser itself: Locust's include_in_web_ui/is_secret exist there, not on groups.
    parser.add_argument("--scenario", default="seed", env_var="LOCUST_SCENARIO",
                       help=f"built-in scenario ({', '.join(scenarios.builtin_names())}) or a .toml path")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                       help="override a scenario field, e.g. total_rows=200000 (repeatable; in the form: "
                            "pairs separated by spaces or commas)")
    parser.add_argument("--collection-mode", choices=COLLECTION_MODES, default=CREATE, env_var="LOCUST_COLLECTION_MODE",
                       help="create: drop and create the scenario's collection at each test start; "
                            "reuse: insert into the existing one")
    parser.add_argument("--acks-file", default=DEFAULT_ACKS, env_var="LOCUST_ACKS_FILE", include_in_web_ui=False,
                       help="where the master (or the only process) appends every insert attempt, one JSON line each")
    parser.add_argument("--user", default=None, env_var="LOCUST_MILVUS_USER",
                       help="Milvus user (or env MILVUS_USER); needs --password")
    parser.add_argument("--password", default=None, is_secret=True,
                       help="its password; prefer env MILVUS_PASSWORD, which no process listing shows")
    parser.add_argument("--token", default=None, is_secret=True,
                       help="an API key or user:password instead of --user/--password (or env MILVUS_TOKEN)")
    parser.add_argument("--db-name", default=None, env_var="LOCUST_DB_NAME", help="the database to use (it must exist)")
    parser.add_argument("--tls-ca", default=None, env_var="LOCUST_TLS_CA",
                       help="with an https:// --host, the CA certificate (PEM) the server's must chain to")
    parser.add_argument("--harness-run-dir", default="", include_in_web_ui=False,
                       help="set by milvus-harness: the run directory whose pause, server-down and ramp files "
                            "the load honours")


def parse_overrides(value: Any) -> dict[str, str]:
    """--set as given: None, a list (the command line) or one text (the web form) -> {key: value}."""
    from harness.commands.options import key_value

    if not value:
        return {}
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    pairs: dict[str, str] = {}
    for piece in _PAIRS.split(text.strip()):
        if not piece.strip():
            continue
        try:
            key, val = key_value(piece.strip().strip(","))
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--set {exc}; give KEY=VALUE, e.g. total_rows=200000") from None
        pairs[key] = val
    return pairs


@dataclass(frozen=True)
class LoadSettings:
    """What one test inserts, where, and how: the options resolved and validated."""

    connection: Connection
    scenario: scenarios.Scenario
    collection_mode: str
    acks: Path
    #: The harness's run directory (milvus-harness run and ui); None for a plain Locust run.
    run_dir: Path | None = None

    @property
    def pause(self) -> LoadPause | None:
        return LoadPause.in_dir(self.run_dir) if self.run_dir else None

    @property
    def down(self) -> ServerDown | None:
        return ServerDown.in_dir(self.run_dir) if self.run_dir else None

    @property
    def ramp(self) -> Path | None:
        """Where the ramp records its steps (harness runs without --users)."""
        return self.run_dir / "ramp.jsonl" if self.run_dir else None

    @classmethod
    def from_options(cls, options: Any, host: str | None, environ: Mapping[str, str]) -> "LoadSettings":
        """The settings of Locust's parsed options and host; UsageError names what is wrong."""
        from harness.commands.options import credentials_from_args
        from harness.targets.external import parse_uri

        mode = getattr(options, "collection_mode", CREATE)
        if mode not in COLLECTION_MODES:
            raise UsageError(f"--collection-mode {mode!r}: allowed are {', '.join(COLLECTION_MODES)}")
        scenario = scenarios.load(str(getattr(options, "scenario", "") or "seed").strip())
        scenario = scenario.with_overrides(parse_overrides(getattr(options, "set", None)))

        def given(name: str) -> str | None:
            value = getattr(options, name, None)
            return str(value) if value not in (None, "") else None

        flags = argparse.Namespace(target="external", uri=host, user=given("user"), password=given("password"),
                                   token=given("token"), db_name=given("db_name"), tls_ca=given("tls_ca"))
        credentials = credentials_from_args(flags, environ)
        if not host:
            raise UsageError("no Milvus address: give --host, e.g. --host http://127.0.0.1:19530")
        address = "{}:{}".format(*parse_uri(host, flag="--host"))
        run_dir = given("harness_run_dir")
        return cls(connection=Connection(address, credentials), scenario=scenario, collection_mode=mode,
                   acks=Path(given("acks_file") or DEFAULT_ACKS), run_dir=Path(run_dir) if run_dir else None)

    def to_json(self) -> dict[str, Any]:
        """What another process may be told (a file, a message): no password, no token."""
        return {"address": self.connection.address, "credentials": self.connection.credentials.to_json(),
                "scenario": self.scenario.to_json(), "collection_mode": self.collection_mode,
                "acks": str(self.acks), "run_dir": str(self.run_dir) if self.run_dir else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], environ: Mapping[str, str]) -> "LoadSettings":
        """The inverse of to_json; the secrets come from `environ` (Credentials.to_env)."""
        credentials = Credentials.from_parts(data.get("credentials") or {}, environ)
        scenario = scenarios.from_mapping(data["scenario"], default_name=data["scenario"]["name"])
        return cls(connection=Connection(data["address"], credentials), scenario=scenario,
                   collection_mode=data["collection_mode"], acks=Path(data["acks"]),
                   run_dir=Path(data["run_dir"]) if data.get("run_dir") else None)
