"""Every file under the lake and the landing area, a local folder or an object store, through pyarrow's
filesystems: `s3://`, `gs://`, `abfs://` and `hdfs://` URIs take their credentials and endpoints from the
standard `AWS_*` / `GOOGLE_*` / `AZURE_*` variables, or from a lake's storage options (delta-rs keys).

This module needs pyarrow only, so the shard reader can use it without Polars or Delta.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

Options = Mapping[str, str] | None

_S3_OPTIONS = {  # delta-rs storage option -> pyarrow S3FileSystem argument
    "aws_access_key_id": "access_key",
    "access_key_id": "access_key",
    "aws_secret_access_key": "secret_key",
    "secret_access_key": "secret_key",
    "aws_session_token": "session_token",
    "session_token": "session_token",
    "aws_region": "region",
    "region": "region",
    "aws_endpoint_url": "endpoint_override",
    "aws_endpoint": "endpoint_override",
    "endpoint_url": "endpoint_override",
    "endpoint": "endpoint_override",
}


def is_uri(location: str | Path) -> bool:
    """Whether `location` is an object-store URI (anything with a scheme but `file://`)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def normalize(location: str | Path) -> str:
    """A URI as it is, a local path (or `file://` URI) made absolute."""
    text = str(location)
    if is_uri(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://")).expanduser().resolve())


def join(location: str | Path, *parts: str) -> str:
    """`location` with `parts` appended by `/` (URIs and local paths alike)."""
    return "/".join([str(location).rstrip("/"), *parts])


def name_of(location: str | Path) -> str:
    """The last part of a location (its file name)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def filesystem(location: str | Path, options: Options = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of `location` and the path inside it."""
    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), normalize(text)
    parsed = urlparse(text)
    if parsed.scheme in ("s3", "s3a"):
        return s3_filesystem(options), f"{parsed.netloc}{parsed.path}".rstrip("/")
    fs, path = pafs.FileSystem.from_uri(text)
    return fs, path.rstrip("/")


def s3_filesystem(options: Options = None, *, create_buckets: bool = False) -> pafs.S3FileSystem:
    """An S3 filesystem from storage options over the standard variables (`AWS_ENDPOINT_URL` for S3-compatible
    stores such as MinIO; credentials and region from the AWS default chain)."""
    kwargs = {
        _S3_OPTIONS[k.lower()]: v
        for k, v in {**_environment_endpoint(), **(options or {})}.items()
        if k.lower() in _S3_OPTIONS
    }
    endpoint = kwargs.get("endpoint_override")
    if endpoint and "://" in endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    return pafs.S3FileSystem(allow_bucket_creation=create_buckets, **kwargs)


def _environment_endpoint() -> dict[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"aws_endpoint_url": endpoint} if endpoint else {}


def is_file(location: str | Path, options: Options = None) -> bool:
    """Whether a file exists at `location`."""
    fs, path = filesystem(location, options)
    return fs.get_file_info(path).type == pafs.FileType.File


def info(location: str | Path, options: Options = None) -> pafs.FileInfo:
    """What the store knows of `location`: its type, size and modification time (type NotFound when absent)."""
    fs, path = filesystem(location, options)
    return fs.get_file_info(path)


def is_dir(location: str | Path, options: Options = None) -> bool:
    """Whether `location` is a folder (on an object store: a prefix that some object lies under)."""
    return info(location, options).type == pafs.FileType.Directory


def open_input(location: str | Path, options: Options = None) -> pa.NativeFile:
    """A seekable reader of the file at `location`; FileNotFoundError naming it when absent."""
    fs, path = filesystem(location, options)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{location} does not exist") from exc


def open_stream(location: str | Path, options: Options = None) -> pa.NativeFile:
    """A sequential reader of the file at `location`, decompressed by its extension (.gz, .bz2, .zst, .lz4,
    .br); FileNotFoundError naming it when absent."""
    fs, path = filesystem(location, options)
    try:
        return fs.open_input_stream(path, compression="detect")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{location} does not exist") from exc


def read_bytes(location: str | Path, options: Options = None) -> bytes:
    """The whole file at `location`; FileNotFoundError naming it when absent."""
    fs, path = filesystem(location, options)
    try:
        with fs.open_input_stream(path) as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{location} does not exist") from exc


def read_text(location: str | Path, options: Options = None) -> str:
    """The file at `location` as UTF-8 text."""
    return read_bytes(location, options).decode()


def write_bytes(location: str | Path, data: bytes, options: Options = None) -> str:
    """Write a whole file: locally to a temporary name renamed into place, on an object store as one put,
    so readers see the old file, the new file or none, never part of one. Returns the location."""
    fs, path = filesystem(location, options)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{parent}/.{name_of(path)}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open_output_stream(tmp) as fh:
            fh.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as fh:
            fh.write(data)
    return str(location)


def write_text(location: str | Path, text: str, options: Options = None) -> str:
    """Write `text` (UTF-8) as a whole file; returns the location."""
    return write_bytes(location, text.encode(), options)


def list_files(location: str | Path, options: Options = None, *, recursive: bool = True) -> list[str]:
    """The files under folder `location` as locations of the same kind (URIs stay URIs), sorted."""
    fs, path = filesystem(location, options)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
    base = str(location).rstrip("/") if is_uri(location) else normalize(location)
    return sorted(base + i.path[len(path) :] for i in infos if i.type == pafs.FileType.File)


def upload_folder(folder: str | Path, location: str | Path, options: Options = None) -> str:
    """Copy the files under local `folder` to `location` (a folder or an object-store prefix), keeping their
    relative paths; returns the location."""
    fs, path = filesystem(location, options)
    pafs.copy_files(normalize(folder), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return str(location)


def file_infos(location: str | Path, options: Options = None) -> dict[str, pafs.FileInfo]:
    """The files under folder `location`, keyed by their path relative to it (`a/b.csv`), with their size and
    modification time; empty when the folder does not exist."""
    fs, path = filesystem(location, options)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return {i.path[len(path) :].lstrip("/"): i for i in infos if i.type == pafs.FileType.File}


def link(location: str | Path) -> str:
    """A URI for `location` (a `file://` URI for a local path), for links in reports."""
    return str(location) if is_uri(location) else Path(normalize(location)).as_uri()
