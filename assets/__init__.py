"""Dagster wiring for sidforge: thin assets over the libraries, resources and partitions."""
