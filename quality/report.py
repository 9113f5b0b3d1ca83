"""Per-build HTML report with inline SVG plots, a Markdown summary, and the metrics table for the CLI."""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lake import storage
from quality.sid_metrics import lorenz

SUMMARY_KEYS = (
    "gini",
    "gini_padded_to_items",
    "collision_rate",
    "unique_sid_rate",
    "max_items_per_sid",
    "embedding_hitrate",
    "embedding_hitrate_resolved",
    "embedding_hitrate_raw",
    "embedding_hitrate_random",
    "reconstruction_error",
    "neighbour_recall_at_k",
)
LEVEL_KEYS = ("perplexity_per_level", "utilisation_per_level", "dead_codes_per_level")
LIMIT = {"color": "#d62728", "linestyle": "--", "linewidth": 1.2}
PROBE_START, PROBE_END = "<!-- probe -->", "<!-- /probe -->"
PROBE_SERIES = {"probe": "", "random SIDs": "_random", "popularity": "_popularity"}


def _svg(fig) -> str:
    """A matplotlib figure as inline SVG (text kept as paths-free <text>, no external files)."""
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return "<figure>" + svg[svg.index("<svg") :] + "</figure>"


def _figure(title: str, x_label: str, y_label: str, size: tuple[float, float] = (5.2, 3.4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    return fig, ax


def lorenz_svg(counts: np.ndarray, gini: float | None = None) -> str:
    """Lorenz curve of SID occupancy against the line of equality, with the Gini coefficient."""
    xs, ys = lorenz(counts)
    fig, ax = _figure("Lorenz curve of SID occupancy", "share of occupied SIDs", "share of items")
    ax.plot([0, 1], [0, 1], color="#999", linestyle=":", label="equality")
    ax.plot(xs, ys, color="#1f77b4", linewidth=2, label="SIDs" + (f" (Gini {gini:.3f})" if gini is not None else ""))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=9)
    return _svg(fig)


def bars_svg(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    x_label: str,
    y_label: str,
    limits: Sequence[float] | float | None = None,
    limit_label: str = "",
) -> str:
    """A bar chart with each bar's value written on it and, when given, the threshold (one per bar or one line)."""
    fig, ax = _figure(title, x_label, y_label)
    bars = ax.bar(list(labels), list(values), color="#2ca02c")
    whole = all(float(v).is_integer() for v in values)
    ax.bar_label(bars, labels=[f"{v:,.0f}" if whole else f"{v:.3g}" for v in values], fontsize=8, padding=2)
    if isinstance(limits, (int, float)):
        ax.axhline(limits, **LIMIT, label=limit_label)
        ax.legend(fontsize=8)
    elif limits is not None:
        for bar, limit in zip(bars, limits, strict=True):
            ax.hlines(limit, bar.get_x(), bar.get_x() + bar.get_width(), **LIMIT)
        ax.plot([], [], **LIMIT, label=limit_label)
        ax.legend(fontsize=8)
    ax.margins(y=0.15)
    return _svg(fig)


def grouped_bars_svg(
    title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]], x_label: str, y_label: str
) -> str:
    """Bars of several series side by side in each group, each bar's value written on it."""
    fig, ax = _figure(title, x_label, y_label)
    width = 0.8 / max(1, len(series))
    for offset, ((name, values), colour) in enumerate(
        zip(series.items(), ["#1f77b4", "#7f7f7f", "#ff7f0e"], strict=False)
    ):
        xs = [i + (offset - (len(series) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, list(values), width, color=colour, label=name)
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    return _svg(fig)


def probe_section(metrics: Mapping) -> str:
    """The report's GR probe section: HR@K and NDCG@K of the probe beside random SIDs and popularity (chart and
    table), or how to run it when the build's metrics have no probe figures yet."""
    ks = sorted(int(k.removeprefix("probe_hr_at_")) for k in metrics if re.fullmatch(r"probe_hr_at_\d+", k))
    if not ks:
        body = (
            "<p>Not run for this build: <code>sidforge probe BUILD_ID</code>, or the <code>gr_probe</code> asset "
            "with config <code>enabled: true</code>.</p>"
        )
    else:
        series = {
            name: [float(metrics.get(f"probe_hr_at_{k}{s}", 0.0)) for k in ks] for name, s in PROBE_SERIES.items()
        }
        chart = grouped_bars_svg("GR probe: hit rate", [f"HR@{k}" for k in ks], series, "K", "HR@K")
        head = "".join(f"<th>{html.escape(name)}</th>" for name in PROBE_SERIES)
        rows = "".join(
            f"<tr><td>{figure}@{k}</td>"
            + "".join(
                f"<td>{float(metrics.get(f'probe_{figure.lower()}_at_{k}{s}', 0.0)):.4f}</td>"
                for s in PROBE_SERIES.values()
            )
            + "</tr>"
            for figure in ("HR", "NDCG")
            for k in ks
        )
        settings = ", ".join(f"{k}={v}" for k, v in (metrics.get("probe_config") or {}).items())
        body = (
            f"<p>{int(metrics.get('probe_test_examples', 0)):,} test examples of "
            f"<code>{html.escape(str(metrics.get('probe_version', '')))}</code>; settings "
            f"<code>{html.escape(settings)}</code></p>"
            f"{chart}<table><tr><th></th>{head}</tr>{rows}</table>{_other_probe_runs(metrics.get('probe_runs') or {})}"
        )
    return f"{PROBE_START}<h2>GR probe</h2>{body}{PROBE_END}"


def _other_probe_runs(runs: Mapping[str, Mapping]) -> str:
    """Probe runs with other settings than the build's own figures, one row each (kept, never merged)."""
    if not runs:
        return ""
    rows = "".join(
        f"<tr><td><code>{html.escape(key)}</code></td><td>{int(run.get('probe_test_examples', 0)):,}</td>"
        f"<td>{float(run.get('probe_hr_at_10', 0.0)):.4f}</td><td>{float(run.get('probe_hr_at_10_random', 0.0)):.4f}"
        "</td></tr>"
        for key, run in sorted(runs.items())
    )
    return (
        "<h3>Probe runs with other settings</h3><table><tr><th>settings</th><th>test examples</th><th>HR@10</th>"
        f"<th>HR@10 random SIDs</th></tr>{rows}</table>"
    )


def probe_figures(metrics: Mapping) -> dict:
    """The probe's figures among a build's stored metrics: a report written again for the same build keeps them."""
    return {key: value for key, value in metrics.items() if key.startswith("probe_")}


def add_probe(report: str, figures: Mapping, options: storage.Options = None) -> str:
    """Put the probe's `figures` into a written report: its probe section (appended to a report written before
    reports had one) and its `metrics.json`. Returns the report's location."""
    page = storage.read_text(report, options)
    if PROBE_START in page:
        page = page[: page.index(PROBE_START)] + probe_section(figures) + page[page.index(PROBE_END) + len(PROBE_END) :]
    else:
        page = page.replace("</body>", probe_section(figures) + "</body>")
    summary = storage.join(report.rsplit("/", 1)[0], "metrics.json")
    if storage.is_file(summary, options):
        stored = json.loads(storage.read_text(summary, options))
        stored["metrics"] = {**stored["metrics"], **figures}
        storage.write_text(summary, json.dumps(stored, indent=2, default=str), options)
    return storage.write_text(report, page, options)


def history_svg(builds: Sequence[str], series: Mapping[str, Sequence[float]], limits: Mapping[str, Any]) -> str:
    """Metrics across builds (oldest first), a marker and value per build, with the gate's limits."""
    fig, ax = _figure(f"Metrics across builds ({len(builds)})", "build", "value", size=(6.4, 3.6))
    positions = list(range(len(builds)))
    for (name, values), colour in zip(series.items(), ["#1f77b4", "#ff7f0e", "#9467bd"], strict=False):
        ax.plot(positions, values, marker="o", color=colour, label=name)
        for x, v in zip(positions, values, strict=True):
            ax.annotate(
                f"{v:.3f}", (x, v), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8, color=colour
            )
        if name in limits:
            ax.axhline(limits[name], color=colour, linestyle="--", linewidth=1, label=f"{name} limit {limits[name]}")
    ax.set_xticks(positions, [b[-17:] for b in builds], rotation=20, ha="right", fontsize=7)
    ax.set_xlim(-0.5, max(0.5, len(builds) - 0.5))
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return _svg(fig)


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


def write_report(
    folder: str | Path,
    build_id: str,
    metrics: dict,
    counts: np.ndarray,
    history: Sequence[tuple[str, dict]],
    checks: dict[str, bool],
    limits: dict[str, Any],
    validations: Sequence[dict] = (),
    options: storage.Options = None,
) -> str:
    """Write `index.html` (one self-contained file: charts as inline SVG) and `metrics.json` under `folder`.

    `limits`: the gate's thresholds (max_gini, max_collision_rate, perplexity_floor per level,
    min_level_utilisation, min_hitrate); `validations`: the latest Great Expectations result of each table.
    """
    folder = storage.normalize(folder)
    labels, values = occupancy_histogram(counts)
    levels = [f"level {i + 1}" for i in range(len(metrics.get("utilisation_per_level", [])))]
    names = [b for b, _ in history]
    series = {k: [float(m.get(k, 0.0)) for _, m in history] for k in ("gini", "collision_rate", "embedding_hitrate")}
    compared = [
        ("random codes\n(floor)", "embedding_hitrate_random"),
        ("published\ncodes", "embedding_hitrate_resolved"),
        ("raw codes", "embedding_hitrate"),
        ("raw embeddings\n(ceiling)", "embedding_hitrate_raw"),
    ]
    hitrates = [(label, float(metrics[key])) for label, key in compared if key in metrics]
    charts = [
        lorenz_svg(counts, metrics.get("gini")),
        bars_svg("Occupancy histogram", labels, values, "items per SID", "SIDs"),
        bars_svg(
            "Perplexity per level (raw codes)",
            levels,
            metrics.get("perplexity_per_level", []),
            "level",
            "perplexity",
            limits.get("perplexity_floor"),
            "gate: at least",
        ),
        bars_svg(
            "Utilisation per level (raw codes)",
            levels,
            metrics.get("utilisation_per_level", []),
            "level",
            "share of codes used",
            limits.get("min_level_utilisation"),
            "gate: at least",
        ),
        bars_svg(
            f"Embedding hitrate@{metrics.get('hitrate_k', 30)}",
            [h[0] for h in hitrates],
            [h[1] for h in hitrates],
            "vectors compared",
            "hitrate",
            limits.get("min_hitrate"),
            "gate: raw codes at least",
        ),
        history_svg(
            names,
            series,
            {"gini": limits.get("max_gini"), "collision_rate": limits.get("max_collision_rate")}
            if "max_gini" in limits
            else {},
        ),
    ]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in metrics_table(metrics))
    check_rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td class={'ok' if v else 'bad'}>{'passed' if v else 'FAILED'}</td></tr>"
        for k, v in checks.items()
    )
    validation_rows = "".join(
        f"<tr><td>{html.escape(v['table'])}</td><td>{html.escape(v.get('partition') or '')}</td>"
        f"<td class={'ok' if v['success'] else 'bad'}>{'passed' if v['success'] else 'FAILED'}</td>"
        f"<td>{v['rows']:,}</td><td>{v['failed']}</td><td>{html.escape(v['run'])}</td>"
        f'<td><a href="{html.escape(storage.link(v["report"]))}">results</a></td></tr>'
        for v in validations
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>SID build {html.escape(build_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}figure{{display:inline-block;margin:0.5em;vertical-align:top}}
figure svg{{max-width:640px;height:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}
.ok{{color:#2a7a2a}}.bad{{color:#c00;font-weight:bold}}</style></head><body>
<h1>SID build {html.escape(build_id)}</h1>
<h2>Gate</h2><table>{check_rows}</table>
<h2>Charts</h2>{"".join(charts)}
{probe_section(metrics)}
<h2>Table validations (Great Expectations, latest run of each)</h2>
<table><tr><th>table</th><th>partition</th><th>result</th><th>rows</th><th>failed expectations</th><th>run</th>
<th></th></tr>{validation_rows}</table>
<h2>Metrics</h2><table>{rows}</table></body></html>"""
    storage.write_text(
        storage.join(folder, "metrics.json"),
        json.dumps({"build_id": build_id, "metrics": metrics, "checks": checks}, indent=2, default=str),
        options,
    )
    return storage.write_text(storage.join(folder, "index.html"), page, options)
