"""The part of a run with in-cluster Locust that a Ctrl-C lands in, as its own process.

    python locust_cluster_child.py REPORT_DIR NAMESPACE

Does what the run lifecycle does with `--locust in-cluster` once Milvus answers: start_in_cluster
(image through the docker / kind stand-ins on PATH, objects through the kube context
kind-milvus-harness of $KUBECONFIG, the stand-in API server), printing "deploying" before and
"loading" after, then running() in a loop and stop() in finally, until the load ends or SIGINT
arrives. SIGINT keeps Python's default handling (KeyboardInterrupt); the exit code is then 130,
as `milvus-harness run`'s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.rundir import RunDir
from harness.run.lifecycle import RunOptions, prepare
from harness.run.locust_cluster import start_in_cluster
from harness.targets.protocol import TargetOptions


def main(report_dir: str, namespace: str) -> int:
    run_dir = RunDir.create(Path(report_dir), "20261129-231500-smoke-v2.6.15")
    options = RunOptions(scenario="smoke", workers=2, users=2, locust="in-cluster",
                         target=TargetOptions(target="kind", namespace=namespace))
    scenario, target = prepare(options)
    print("deploying", flush=True)
    locust = start_in_cluster(run_dir, options, scenario, target)
    try:
        print("loading", flush=True)
        while locust.running():
            time.sleep(0.05)
    finally:
        locust.stop(timeout=60)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*sys.argv[1:]))
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        sys.exit(130)
