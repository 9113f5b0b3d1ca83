"""Per-build HTML report with inline SVG plots, a Markdown summary, and the metrics table for the CLI."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quality.sid_metrics import lorenz

W, H, PAD = 420, 260, 40
SUMMARY_KEYS = ("gini", "gini_padded_to_items", "collision_rate", "unique_sid_rate", "max_items_per_sid",
                "embedding_hitrate", "embedding_hitrate_resolved", "embedding_hitrate_raw", "embedding_hitrate_random",
                "reconstruction_error", "neighbour_recall_at_k")
LEVEL_KEYS = ("perplexity_per_level", "utilisation_per_level", "dead_codes_per_level")


def _frame(title: str, body: str, x_label: str, y_label: str) -> str:
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
            f'aria-label="{html.escape(title)}"><rect width="{W}" height="{H}" fill="white"/>'
            f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#333"/>'
            f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{H - PAD}" stroke="#333"/>{body}'
            f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{html.escape(x_label)}</text>'
            f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle" font-size="12">'
            f'{html.escape(y_label)}</text></svg><figcaption>{html.escape(title)}</figcaption></figure>')


def _xy(x: float, y: float, x_max: float, y_max: float) -> tuple[float, float]:
    return (PAD + (W - PAD - 10) * (x / x_max if x_max else 0),
            (H - PAD) - (H - PAD - 10) * (y / y_max if y_max else 0))


def lorenz_svg(counts: np.ndarray) -> str:
    """Lorenz curve of SID occupancy against the line of equality."""
    xs, ys = lorenz(counts)
    step = max(1, len(xs) // 400)
    points = " ".join("{:.1f},{:.1f}".format(*_xy(x, y, 1, 1)) for x, y in zip(xs[::step], ys[::step], strict=True))
    x1, y1 = _xy(1, 1, 1, 1)
    x0, y0 = _xy(0, 0, 1, 1)
    body = (f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4"/>'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points} {x1:.1f},{y1:.1f}"/>')
    return _frame("Lorenz curve of SID occupancy", body, "share of occupied SIDs", "share of items")


def bars_svg(title: str, labels: Sequence[str], values: Sequence[float], x_label: str, y_label: str) -> str:
    """A bar chart (occupancy histogram, utilisation per level)."""
    top = max(values) if len(values) and max(values) > 0 else 1
    width = (W - PAD - 10) / max(1, len(values))
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        _, y = _xy(0, value, 1, top)
        x = PAD + i * width
        body.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, width - 2):.1f}" '
                    f'height="{H - PAD - y:.1f}" fill="#2ca02c"><title>{html.escape(label)}: {value:g}</title></rect>')
        if len(labels) <= 12:
            body.append(f'<text x="{x + width / 2:.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">'
                        f'{html.escape(label)}</text>')
    return _frame(title, "".join(body), x_label, y_label)


def history_svg(builds: Sequence[str], series: dict[str, Sequence[float]]) -> str:
    """Metrics across builds, one line per metric."""
    colours = ["#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#17becf"]
    top = max([max(v) for v in series.values() if len(v)] + [1e-9])
    body = []
    for (name, values), colour in zip(series.items(), colours, strict=False):
        pts = " ".join("{:.1f},{:.1f}".format(*_xy(i, v, max(1, len(values) - 1), top)) for i, v in enumerate(values))
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        body.append(f'<text x="{W - 12}" y="{24 + 14 * len(body) // 2}" fill="{colour}" font-size="11" '
                    f'text-anchor="end">{html.escape(name)}</text>')
    return _frame("Metrics across builds", "".join(body), f"builds ({len(builds)})", "value")


def occupancy_histogram(counts: np.ndarray) -> tuple[list[str], list[float]]:
    """Number of SIDs holding 1, 2, ..., 9 and 10+ items."""
    capped = np.minimum(np.asarray(counts), 10)
    hist = np.bincount(capped, minlength=11)[1:]
    return [str(i) for i in range(1, 10)] + ["10+"], hist.astype(float).tolist()


def metrics_table(metrics: dict) -> list[tuple[str, str]]:
    """(name, value) rows of the scalar metrics, lists joined."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, float):
            rows.append((key, f"{value:.6g}"))
        elif isinstance(value, list):
            rows.append((key, ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)))
        elif not isinstance(value, dict):
            rows.append((key, str(value)))
    return rows


def markdown_summary(build_id: str, metrics: dict, checks: dict[str, bool], report: str) -> str:
    """The summary shown in the Dagster UI."""
    lines = [f"### SID build `{build_id}`", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {metrics[k]:.4g} |" for k in SUMMARY_KEYS if k in metrics]
    lines += [f"| {k} | {', '.join(f'{v:.4g}' for v in metrics[k])} |" for k in LEVEL_KEYS if k in metrics]
    lines += ["", "| check | passed |", "|---|---|"]
    lines += [f"| {k} | {'yes' if v else '**no**'} |" for k, v in checks.items()]
    lines += ["", f"Report: `{report}`"]
    return "\n".join(lines)


def write_report(folder: str | Path, build_id: str, metrics: dict, counts: np.ndarray,
                 history: Sequence[tuple[str, dict]], checks: dict[str, bool]) -> Path:
    """Write `index.html` and `metrics.json` for a build under `folder`; returns the page."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels, values = occupancy_histogram(counts)
    util = metrics.get("utilisation_per_level", [])
    names = [b for b, _ in history]
    series = {k: [float(m.get(k, 0.0)) for _, m in history] for k in ("gini", "collision_rate", "embedding_hitrate")}
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in metrics_table(metrics))
    check_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{'passed' if v else 'FAILED'}</td></tr>"
                         for k, v in checks.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>SID build {html.escape(build_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}figure{{display:inline-block;margin:1em}}
table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:2px 8px}}</style></head><body>
<h1>SID build {html.escape(build_id)}</h1>
<h2>Checks</h2><table>{check_rows}</table>
{lorenz_svg(counts)}
{bars_svg("Occupancy histogram", labels, values, "items per SID", "SIDs")}
{bars_svg("Utilisation per level (raw codes)", [f"L{i + 1}" for i in range(len(util))], util, "level",
          "share of codes used")}
{history_svg(names, series)}
<h2>Metrics</h2><table>{rows}</table></body></html>"""
    (folder / "index.html").write_text(page)
    (folder / "metrics.json").write_text(json.dumps({"build_id": build_id, "metrics": metrics, "checks": checks},
                                                    indent=2, default=str))
    return folder / "index.html"
