"""Quality: Great Expectations suites and training-free SID metrics (no Dagster imports)."""
