"""Watchers: what Milvus's memory and restarts did during a run."""
