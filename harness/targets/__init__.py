"""Where Milvus comes from: one Target protocol, with embedded, kind and external backends."""
