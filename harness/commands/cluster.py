"""`milvus-harness cluster up|down|status`: a kind cluster with Milvus in the seed's topology.

The cluster operations are harness/kube/cluster.py; this is their command line.
"""

from __future__ import annotations

import argparse

from harness.units import parse_duration

EXAMPLES = """examples:
  milvus-harness cluster up --values seed --milvus-version v2.6.15
  milvus-harness cluster status
  milvus-harness cluster down"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="a kind cluster with Milvus in the seed's topology: up, down, status",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    for action, text in (("up", "create the kind cluster (if needed), install metrics-server and Milvus, wait"),
                         ("down", "delete the kind cluster"),
                         ("status", "show the Milvus release's pods (exit 0 when all are ready)")):
        a = actions.add_parser(action, help=text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
        a.add_argument("--name", default="milvus-harness", help="kind cluster name (default milvus-harness)")
        a.add_argument("--namespace", default="default", help="namespace of Milvus (default default)")
        a.add_argument("--release", default="milvus", help="Helm release name of Milvus (default milvus)")
        if action == "up":
            a.add_argument("--milvus-version", metavar="TAG", default=None,
                           help="image tag, e.g. v2.6.15, v2.5.16 or master-20250311-0698d04f (default v2.6.15)")
            a.add_argument("--values", default="laptop", metavar="seed|laptop|FILE",
                           help="Helm values: seed (2 streaming nodes, 4 CPU / 16Gi each), laptop (fits 16 GB), "
                                "or a file (default laptop)")
            a.add_argument("--values-file", action="append", default=[], metavar="FILE",
                           help="more Helm values over --values, repeatable; both are stored as the base "
                                "every run installs from")
            a.add_argument("--image-repository", default="milvusdb/milvus", metavar="REPO",
                           help="image repository (default milvusdb/milvus)")
            a.add_argument("--timeout", default="30m", help="how long to wait for the pods (default 30m)")
    p.set_defaults(func=from_args)


def from_args(args: argparse.Namespace) -> int:
    from harness.kube import cluster

    spec = cluster.ClusterSpec(name=args.name, namespace=args.namespace, release=args.release)
    if args.action == "up":
        spec.image_tag = args.milvus_version or cluster.DEFAULT_TAG
        spec.values = args.values
        spec.values_files = list(args.values_file)
        spec.image_repository = args.image_repository
        spec.timeout = parse_duration(args.timeout, "--timeout")
    return run(args.action, spec)


def run(action: str, spec: object) -> int:
    """`up`, `down` or `status` of the cluster `spec` (a kube.cluster.ClusterSpec)."""
    from harness.console import make_console
    from harness.kube import cluster

    command = {"up": cluster.cluster_up, "down": cluster.cluster_down, "status": cluster.cluster_status}
    return command[action](spec, console=make_console())
