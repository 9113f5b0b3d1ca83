"""Great Expectations results as one self-contained HTML page per validation (readable offline, unlike Data
Docs, whose pages load their styles and scripts from CDNs), plus `latest.json` per table for the build report."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from lake import storage


def expectation_rows(result) -> list[dict]:
    """Every expectation of a GX checkpoint result: name, arguments, success, unexpected count and examples."""
    rows = []
    for run in result.run_results.values():
        for item in run.results:
            cfg = item.expectation_config
            rows.append(
                {
                    "expectation": cfg.type,
                    "success": bool(item.success),
                    "kwargs": {k: v for k, v in cfg.kwargs.items() if k != "batch_id"},
                    "unexpected_count": item.result.get("unexpected_count"),
                    "examples": [str(v) for v in (item.result.get("partial_unexpected_list") or [])[:5]],
                }
            )
    return rows


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return html.escape(text if len(text) <= 300 else text[:299] + "…")


def write_validation_report(
    folder: str | Path,
    table: str,
    run: str,
    partition: str | None,
    success: bool,
    rows: int,
    validated_rows: int,
    exact: dict,
    expectations: Sequence[dict],
    options: storage.Options = None,
) -> str:
    """Write `<folder>/<table>/<run>[_<partition>].html` and `<folder>/<table>/latest.json` (a folder or an
    object-store prefix); return the page's location."""
    target = storage.join(storage.normalize(folder), table)
    stem = re.sub(r"[^A-Za-z0-9_.=-]", "_", run + (f"_ds={partition}" if partition else ""))
    page = storage.join(target, f"{stem}.html")
    failed = [e for e in expectations if not e["success"]]
    summary = [
        ("table", table),
        ("partition", partition or "whole table"),
        ("run", run),
        ("result", "passed" if success else "FAILED"),
        ("rows", f"{rows:,}"),
        ("validated rows", f"{validated_rows:,}"),
        ("expectations", f"{len(expectations) - len(failed)} of {len(expectations)} passed"),
        *((f"exact check: {k}", str(v)) for k, v in exact.items()),
    ]
    lines = "".join(
        f"<tr><td class={'ok' if e['success'] else 'bad'}>{'passed' if e['success'] else 'FAILED'}</td>"
        f"<td>{_cell(e['expectation'])}</td><td><code>{_cell(e['kwargs'])}</code></td>"
        f"<td>{'' if e['unexpected_count'] is None else e['unexpected_count']}</td>"
        f"<td>{_cell(', '.join(e['examples']))}</td></tr>"
        for e in sorted(expectations, key=lambda e: e["success"])
    )
    storage.write_text(
        page,
        f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(table)}: validation {html.escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:2px 8px;vertical-align:top}}.ok{{color:#2a7a2a}}.bad{{color:#c00;font-weight:bold}}
</style></head><body><h1>Validation of <code>{html.escape(table)}</code></h1>
<table>{"".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary)}</table>
<h2>Expectations</h2><table><tr><th>result</th><th>expectation</th><th>arguments</th><th>unexpected</th>
<th>examples</th></tr>{lines}</table></body></html>""",
        options,
    )
    latest = {
        "table": table,
        "partition": partition,
        "run": run,
        "success": success,
        "rows": rows,
        "failed": len(failed),
        "report": page,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    storage.write_text(storage.join(target, "latest.json"), json.dumps(latest), options)
    return page


def latest_validations(folder: str | Path, options: storage.Options = None) -> list[dict]:
    """The latest validation of each table under `folder` (as written by write_validation_report)."""
    files = [f for f in storage.list_files(folder, options) if f.endswith("/latest.json")]
    return [json.loads(storage.read_text(f, options)) for f in files]
