"""One module per `milvus-harness` command (as asv's commands/): each has `register(sub)`, which adds
its flags, and a plain `run(...)` that does the work and returns the exit code (tests call it).

harness/cli.py only parses, dispatches and is the one error boundary.
"""

from __future__ import annotations

from harness.commands import bisect, cluster, compare, matrix, profile, report, run, scenarios, ui, versions, watch

#: In the order `milvus-harness --help` lists them.
ALL = [run, ui, report, profile, scenarios, versions, cluster, watch, matrix, bisect, compare]
