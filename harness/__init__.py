"""milvus-harness: reproduce Milvus memory blow-ups on demand, judge them, bisect them."""

__version__ = "0.1.0"
