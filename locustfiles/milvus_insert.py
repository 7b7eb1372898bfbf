"""Insert a milvus-harness scenario into Milvus with plain Locust.

    locust -f locustfiles/milvus_insert.py --host http://127.0.0.1:19530 --scenario smoke
    locust -f locustfiles/milvus_insert.py --host http://127.0.0.1:19530 --headless -u 4 -r 4 -t 10m \\
        --scenario smoke --set total_rows=1000000 --csv out --html out.html --acks-file acks.jsonl

Needs the milvus-harness package installed (pip install .); this file re-exports its
locustfile (harness/locustfiles/milvus_insert.py), the one `milvus-harness run` uses. Options:
`locust -f locustfiles/milvus_insert.py --help`; an example config: locustfiles/locust.conf.
"""

from harness.locustfiles.milvus_insert import MilvusInsertUser  # noqa: F401  (Locust finds the User here)
