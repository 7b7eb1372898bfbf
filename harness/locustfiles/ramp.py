"""The ramp, as a second locustfile: `milvus-harness run` without --users loads
`-f milvus_insert.py,ramp.py`, so the users are the insert locustfile's and Locust takes the
shape from here (harness.load.ramp_shape; nothing here)."""

from harness.load.ramp_shape import RampShape  # noqa: F401  (Locust finds the shape here)
