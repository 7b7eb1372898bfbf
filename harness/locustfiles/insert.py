"""Locust entry point: `locust -f <this file> --harness-config <run>/load.json`.

gRPC must cooperate with gevent before any channel exists; the users and the dispenser
live in harness.load.user (no logic here).
"""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from harness.load.user import MilvusInsertUser  # noqa: E402,F401  (Locust finds the User here)
