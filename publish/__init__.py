"""Publishing training data: examples from the lake, deterministic shards with a manifest, exports."""
