"""The build report's GR probe section: how to run the probe until it has run, then its figures beside the
baselines, replaced (not repeated) when the probe runs again, and in `metrics.json` too."""

from __future__ import annotations

import json

import numpy as np

from quality.report import add_probe, write_report

METRICS = {
    "gini": 0.2,
    "collision_rate": 0.1,
    "embedding_hitrate": 0.6,
    "utilisation_per_level": [1.0, 0.9],
    "perplexity_per_level": [7.5, 6.0],
}


def _figures(hr10: float) -> dict:
    figures = {"probe_test_examples": 300, "probe_version": "lake/published/gr/v1", "probe_config": {"epochs": 4}}
    for k, scale in ((1, 0.2), (10, 1.0), (100, 2.0)):
        figures |= {f"probe_hr_at_{k}": hr10 * scale, f"probe_ndcg_at_{k}": hr10 * scale / 2}
        figures |= {f"probe_hr_at_{k}_random": 0.05 * scale, f"probe_ndcg_at_{k}_random": 0.02 * scale}
        figures |= {f"probe_hr_at_{k}_popularity": 0.07 * scale, f"probe_ndcg_at_{k}_popularity": 0.03 * scale}
    return figures


def test_the_probe_section_says_how_to_run_it_then_shows_the_latest_figures(tmp_path):
    counts = np.array([3, 1, 1, 2])
    report = write_report(tmp_path / "b1", "b1", METRICS, counts, [("b1", METRICS)], {"gini": True}, {})
    page = (tmp_path / "b1" / "index.html").read_text()
    assert "<h2>GR probe</h2>" in page and "sidforge probe BUILD_ID" in page and page.count("<svg") == 6

    add_probe(report, _figures(0.3125))
    page = (tmp_path / "b1" / "index.html").read_text()
    assert "sidforge probe BUILD_ID" not in page and "GR probe: hit rate" in page and page.count("<svg") == 7
    assert "<td>HR@10</td><td>0.3125</td><td>0.0500</td><td>0.0700</td>" in page
    assert "<td>NDCG@100</td><td>0.3125</td><td>0.0400</td><td>0.0600</td>" in page
    assert "300 test examples of <code>lake/published/gr/v1</code>" in page
    assert page.index("GR probe") > page.index("<h2>Charts</h2>") and page.rstrip().endswith("</html>")

    add_probe(report, _figures(0.25))
    page = (tmp_path / "b1" / "index.html").read_text()
    assert page.count("<h2>GR probe</h2>") == 1 and "<td>HR@10</td><td>0.2500</td>" in page and "0.3125" not in page
    stored = json.loads((tmp_path / "b1" / "metrics.json").read_text())
    assert stored["metrics"]["gini"] == 0.2 and stored["metrics"]["probe_hr_at_10"] == 0.25
    assert stored["checks"] == {"gini": True}


def test_a_report_written_before_it_had_a_probe_section_gains_one(tmp_path):
    old = tmp_path / "index.html"
    old.write_text("<!doctype html><html><body><h1>SID build b0</h1><h2>Metrics</h2></body></html>")
    add_probe(str(old), _figures(0.5))
    page = old.read_text()
    assert page.index("<h2>Metrics</h2>") < page.index("<h2>GR probe</h2>") < page.index("</body>")
    assert "<td>HR@1</td><td>0.1000</td>" in page and not (tmp_path / "metrics.json").exists()
