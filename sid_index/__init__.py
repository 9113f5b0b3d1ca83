"""Semantic IDs: residual codebooks, codec and collision resolution (no Dagster, no lake imports)."""
