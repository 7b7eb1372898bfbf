"""A stand-in for kind / helm / kubectl / docker: records its argv and answers from a script.

Tests put wrappers named after each tool on PATH (see conftest.Standins); each call appends
its argv to calls.jsonl and answers with the first matching rule of rules.json (stdout,
stderr, exit code). A rule with "serve" acts as `kubectl port-forward`: it listens on the
local port of its L:R argument until it is terminated.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys


def _serve(argv: list[str], rule: dict) -> None:
    local, remote = next(a for a in argv if re.fullmatch(r"\d+:\d+", a)).split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(local)))
    sock.listen(16)
    print(f"Forwarding from 127.0.0.1:{local} -> {remote}", flush=True)
    while True:  # until SIGTERM / SIGKILL from the test or the code under test
        conn, _ = sock.accept()
        conn.close()


def main(tool: str, root: str) -> None:
    argv = [tool, *sys.argv[1:]]
    with open(os.path.join(root, "calls.jsonl"), "a") as log:
        log.write(json.dumps(argv) + "\n")
    with open(os.path.join(root, "rules.json")) as f:
        rules = json.load(f)
    counts_path = os.path.join(root, "counts.json")
    counts = json.load(open(counts_path)) if os.path.exists(counts_path) else {}
    for i, rule in enumerate(rules):
        if rule["tool"] != tool:
            continue
        prefix = rule.get("prefix") or []
        if argv[1:1 + len(prefix)] != prefix:
            continue
        if not all(token in argv[1:] for token in rule.get("contains") or []):
            continue
        if rule.get("times") is not None and counts.get(str(i), 0) >= rule["times"]:
            continue
        counts[str(i)] = counts.get(str(i), 0) + 1
        with open(counts_path, "w") as f:
            json.dump(counts, f)
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.stdout.flush()
        if rule.get("serve"):
            with open(os.path.join(root, "serve.pid"), "w") as f:
                f.write(str(os.getpid()))
            _serve(argv, rule)
        sys.exit(rule.get("exit", 0))
    sys.exit(0)
