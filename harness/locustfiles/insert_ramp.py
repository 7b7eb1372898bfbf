"""Locust entry point of a run whose users are not pinned: the insert user and the ramp shape.

`locust -f <this file> --harness-config <run>/load.json`; the logic lives in harness.load.user
and harness.load.ramp_shape (nothing here).
"""

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from harness.load.ramp_shape import RampShape  # noqa: E402,F401  (Locust finds the shape here)
from harness.load.user import MilvusInsertUser  # noqa: E402,F401  (Locust finds the User here)
