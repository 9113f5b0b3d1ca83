"""The build registry: typed rows in and out of the builds table, statuses, latest and published builds."""

import datetime as dt

import pytest

from builds.registry import ASSIGNED, BuildRegistry, BuildStatus, SidBuild
from lake import Lake

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _build(build_id: str, minutes: int, status: BuildStatus = BuildStatus.TRAINED, method: str = "rq-kmeans"):
    return SidBuild(
        build_id,
        method,
        [8, 8],
        status,
        T0 + dt.timedelta(minutes=minutes),
        "run-1",
        inputs={"embedding_model": "m", "config": {"seed": 0}},
        metrics={"gini": 0.25},
        seed=0,
    )


def test_a_build_comes_back_as_it_was_recorded(lake: Lake):
    registry = BuildRegistry(lake)
    build = _build("b1", 0)
    registry.record(build)
    assert registry.get("b1") == build
    row = lake.scan("sid_builds").collect().row(0, named=True)
    assert row["inputs"] == '{"embedding_model": "m", "config": {"seed": 0}}' and row["levels"] == 2
    assert SidBuild.from_row(build.to_row()) == build


def test_latest_published_and_marks(lake: Lake):
    registry = BuildRegistry(lake)
    assert registry.latest(BuildStatus.TRAINED) is None and registry.published() is None
    first, second = registry.record(_build("b1", 0)), registry.record(_build("b2", 5))
    registry.record_imported("algr-s1", ["/data/item_sid.csv"], 3, 8192, "run-2")
    assert registry.latest(BuildStatus.TRAINED).build_id == "b2"
    registry.mark(first, BuildStatus.PUBLISHED, metrics={"gini": 0.3})
    registry.mark(second, BuildStatus.BUILT, run_id="run-3")
    assert registry.published().build_id == "b1" and registry.published().metrics == {"gini": 0.3}
    assert [b.build_id for b in registry.all(ASSIGNED)] == ["b1", "b2"]
    assert registry.latest(BuildStatus.IMPORTED).sizes == [8192, 8192, 8192]
    assert registry.latest(BuildStatus.IMPORTED, BuildStatus.BUILT, trained_here=True).build_id == "b2"
    assert registry.get("b2").run_id == "run-3" and registry.sizes("b2") == [8, 8]
    assert list(registry.timeline()["build_id"]) == ["b1"]


def test_an_unknown_build_names_the_known_ones(lake: Lake):
    registry = BuildRegistry(lake)
    registry.record(_build("b1", 0))
    with pytest.raises(LookupError, match=r"no SID build 'b9' in .* \(builds: b1\)"):
        registry.get("b9")


def test_an_unknown_status_in_the_table_is_refused(lake: Lake):
    with pytest.raises(ValueError, match="'retired' is not a valid BuildStatus"):
        SidBuild.from_row({**_build("b1", 0).to_row(), "status": "retired"})
