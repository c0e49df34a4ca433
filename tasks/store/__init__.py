"""The asset store: where each original and its sidecar are written, whole, on any fsspec URL."""
