"""Bad input: one line naming the input and what is allowed, exit 2, nothing left running.

Run as a process, as users run it."""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD = [
    (["run", "--milvus-version", "9.9.9"], "is not published; published: "),
    (["run", "--milvus-version", "2.2.8"], "milvus 2.2.8 is not supported: the oldest embedded Milvus the harness "
                                           "runs is 2.2.9"),
    (["matrix", "--milvus-versions", "2.2.4,2.3.5"], "milvus 2.2.4 is not supported"),
    (["run", "--memory-limit", "0"], "--memory-limit '0' must be greater than zero"),
    (["run", "--memory-limit", "abc"], "--memory-limit 'abc' is not a size"),
    (["run", "--milvus-config", "dataNode.memory.forceSyncWatermark"], "is not key=value"),
    (["run", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["run", "--set", "shardz=1"], "did you mean 'shards'"),
    (["run", "--set", "dim=abc"], "dim='abc' is not a valid int"),
    (["run", "--set", "batch_rows=0"], "batch_rows=0 is out of range"),
    (["run", "--set", "dim=0"], "dim=0 is out of range"),
    (["run", "--set", "shards=64"], "shards=64 is out of range: 1 to 16"),
    (["run", "--watch-interval", "0.01"], "below the minimum of 0.1s"),
    (["run", "--restart", "sometimes"], "invalid choice"),
    (["run", "--workers", "-1"], "--workers -1 is out of range"),
    (["run", "--run-time", "soon"], "--run-time 'soon' is not a duration"),
    (["run", "--restart-backoff", "soon"], "--restart-backoff 'soon' is not a duration"),
    (["run", "--restart-backoff", "0"], "--restart-backoff '0' must be greater than zero"),
    (["run", "--restart-backoff-max=-3s"], "--restart-backoff-max '-3s' is not a duration"),
    (["run", "--restart-backoff", "60s", "--restart-backoff-max", "10s"], "the cap must be at least the first"),
    (["run", "--stall-after", "x"], "--stall-after 'x' is not a duration"),
    (["run", "--stall-after", "0"], "--stall-after '0' must be greater than zero"),
    (["run", "--users", "0"], "--users 0 is out of range: 1 to 256"),
    (["run", "--users", "many"], "argument --users: invalid int value: 'many'"),
    (["run", "--set", "check_after_restart=maybe"], "is not a valid bool (true/false"),
    (["run", "--set", "rules.under_test=datanodes"], "rules.under_test='datanodes' is not allowed: all, or Milvus"),
    (["run", "--verify", "some"], "argument --verify: invalid choice: 'some'"),
    (["run", "--target", "external", "--uri", "http://10.1.2.3:19530"], "is not on this machine"),
    (["run", "--crash-loop-after", "0"], "--crash-loop-after '0': allowed is a whole number of deaths, 1 or more"),
    (["run", "--crash-loop-after", "two"], "--crash-loop-after 'two': allowed is a whole number"),
    (["run", "--crash-loop-after", "2.5"], "--crash-loop-after '2.5': allowed is a whole number"),
    (["run", "--user", "u", "--password", "p"], "--user, --password: only for --target external"),
    (["run", "--target", "external", "--uri", "http://127.0.0.1:1", "--token", "t", "--user", "u", "--password", "p"],
     "are exclusive: give one or the other"),
    (["run", "--target", "external", "--uri", "http://127.0.0.1:1", "--user", "u"], "--password is missing"),
    (["run", "--target", "external", "--uri", "http://127.0.0.1:1", "--tls-ca", "/etc/hostname"],
     "--tls-ca needs an https:// --uri"),
    (["run", "--target", "external", "--uri", "https://127.0.0.1:1", "--tls-ca", "/nonexistent.pem"],
     "is not a file; give the CA certificate in PEM"),
    (["run", "--profile-every", "5s"], "--profile-every '5s' is below the minimum of 10s"),
    (["run", "--profile-every", "often"], "--profile-every 'often' is not a duration"),
    (["report", "/nonexistent"], "is not a finished run directory"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, no_leftovers):
    result = subprocess.run([sys.executable, "-m", "harness.cli", *argv, *(["--report-dir", str(tmp_path)]
                            if argv[0] in ("run", "matrix") else [])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("milvus-harness") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no run directory for a refused run


INJECT_BAD = [("kill@soon", "allowed: kill@rows=N"), ("explode", "is not a fault"), ("stop@5s", "is not a fault"),
              ("kill-every=0s", "greater than zero"), ("oom@rows=lots", "oom@rows=N or oom@DURATION")]


def test_memory_pressure_without_an_oom_killing_limit_is_refused(tmp_path, no_leftovers):
    # Pressure at a limit that pauses instead of killing would only hang the server.
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--inject", "oom@rows=1000", "--no-oom-kill",
                             "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "--inject oom@rows=1000 needs a memory limit that OOM-kills" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec,message", INJECT_BAD)
def test_bad_injection_is_refused(spec, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--inject", spec, "--report-dir",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
