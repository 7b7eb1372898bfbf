"""A real Locust file for the in-cluster tests: each insert of 1,000 'rows' is an ack line, as
the master of locustfiles/milvus_insert.py writes them (--acks-file), and a request of type
insert in Locust's stats. No Milvus: these tests check how the harness deploys, follows, stops
and copies a Locust master, not what it inserts."""

from __future__ import annotations

import json
import time

from locust import User, constant, events, task

ROWS = 1_000


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--acks-file", default="")


class AckingUser(User):
    wait_time = constant(0.05)

    def on_start(self):
        self.batch = 0

    @task
    def insert(self):
        began = time.time()
        path = self.environment.parsed_options.acks_file
        if path:
            first = self.batch * ROWS
            line = {"batch": self.batch, "first_pk": first, "last_pk": first + ROWS - 1, "rows": ROWS, "ok": True,
                    "t": time.time()}
            with open(path, "a") as handle:  # one write per line, as the harness's JsonlWriter
                handle.write(json.dumps(line) + "\n")
        self.batch += 1
        self.environment.events.request.fire(request_type="insert", name="batch", response_time=(time.time() - began) * 1000,
                                             response_length=ROWS, exception=None, context={})
