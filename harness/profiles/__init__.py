"""Go heap profiles of Milvus components: captured by the watchers' side (capture.py), decoded
and aggregated in Python (proto.py, sites.py), read back per run (store.py)."""
