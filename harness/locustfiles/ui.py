"""Locust entry point of `milvus-harness ui` (web UI): the insert user plus the web UI's
extension. gRPC must cooperate with gevent before any channel exists; the logic lives in
harness.load.user and harness.webui.extension (nothing here)."""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from harness.load.user import MilvusInsertUser  # noqa: E402,F401  (Locust finds the User here)
from harness.webui import extension  # noqa: E402,F401  (registers its arguments and listeners)
