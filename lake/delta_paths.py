"""Delta partition paths as the protocol specifies them, for values of any text.

A partition folder is `column=<value escaped>` (every byte outside `[A-Za-z0-9_.~-]` as %XX, as delta-rs writes
it); the log stores a file's relative path URI-encoded once more (`a:b` → folder `model=a%3Ab` → log path
`model=a%253Ab/...`). Every reader and writer of the lake goes through these functions, so a committed file,
its lookup by path and a Spark task's open agree on one spelling.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

NULL_VALUE = "__HIVE_DEFAULT_PARTITION__"


def partition_folder(column: str, value: object) -> str:
    """The folder name of one partition value: `column=value`, the value escaped (None: Hive's null)."""
    return f"{column}={NULL_VALUE if value is None else quote(str(value), safe='')}"


def folder_value(text: str) -> str | None:
    """The partition value a folder name's value part spells (Hive's null as None)."""
    return None if text == NULL_VALUE else unquote(text)


def file_path(log_entry: str) -> str:
    """The relative location on storage of a path as the log spells it (decoded exactly once)."""
    return unquote(log_entry)


def file_location(table_uri: str, log_entry: str) -> str:
    """Where a file of the table at `table_uri` lies, from its path in the log (relative, or absolute)."""
    path = file_path(log_entry)
    if "://" in path or path.startswith("/"):
        return path
    return f"{table_uri}/{path}"
