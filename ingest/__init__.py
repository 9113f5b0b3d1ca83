"""Ingest: input formats and their readers, the synthetic generator, and the polars and Spark engines that
turn files into staged rows and quarantine records for the lake's committer."""
