"""The part of a run with in-cluster Locust that a Ctrl-C lands in, as its own process.

    python locust_cluster_child.py REPORT_DIR NAMESPACE

Deploys through the kube context kind-milvus-harness of $KUBECONFIG (the stand-in), prints
"loading", then follows the load as the run lifecycle does (running() in a loop, stop() in
finally) until the load ends or SIGINT arrives; SIGINT keeps Python's default handling
(KeyboardInterrupt), and the exit code is then 130 as `milvus-harness run`'s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harness.kube import contexts
from harness.kube.locust_manifests import LocustPlan
from harness.run.locust_cluster import InClusterLocust
from harness.rundir import RunDir


def main(report_dir: str, namespace: str) -> int:
    run_dir = RunDir.create(Path(report_dir), "20261129-231500-smoke-v2.6.15")
    locust = InClusterLocust(contexts.api_client("kind-milvus-harness"), namespace,
                             LocustPlan(workers=2, users=2, run_id=run_dir.path.name), run_dir, poll_interval=0.2,
                             ready_timeout=60)
    try:
        locust.deploy()
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
