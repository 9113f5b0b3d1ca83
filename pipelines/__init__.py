"""Dagster jobs and Definitions, and the `sidforge` command line."""
