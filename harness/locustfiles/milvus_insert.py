"""The insert locustfile: `locust -f <this file> --host http://HOST:19530 --scenario smoke [--set KEY=VALUE]`.

What plain Locust runs (the top-level locustfiles/milvus_insert.py re-exports this file) and
what `milvus-harness run` and `ui` run, with Locust's own flags, locust.conf and LOCUST_*
variables. gRPC must cooperate with gevent before any channel exists; the user lives in
harness.load.user, the options, the ledger and the messages in harness.load.central (nothing here).
"""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from harness.load.user import MilvusInsertUser  # noqa: E402,F401  (Locust finds the User here)
