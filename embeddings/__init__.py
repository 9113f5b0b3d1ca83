"""Item embeddings: OpenCLIP encoder, fusion and collaborative alignment (no Dagster, no lake imports)."""
