"""The SID build lifecycle's decisions on literal cases: refresh or rebuild, same inputs, the build id."""

import datetime as dt

import pytest

from builds.lifecycle import Drift, DriftBounds, build_id, decide, same_inputs

CALM = Drift(new_items=10, new_item_share=0.01, changed_items=0, changed_item_share=0.0, new_item_error_ratio=1.1)
BOUNDS = DriftBounds(max_new_share=0.2, max_changed_share=0.05, max_error_ratio=1.5)


def test_auto_refreshes_while_the_drift_is_within_bounds():
    decision = decide("auto", CALM, BOUNDS, settings_differ=False)
    assert decision.refresh and decision.reason == "refresh: 10 new items go to the published codebooks"


@pytest.mark.parametrize(
    ("drift", "reason"),
    [
        (Drift(300, 0.3, 0, 0.0, 1.0), "new items 0.3 > 0.2"),
        (Drift(0, 0.0, 60, 0.06, 0.0), "changed items 0.06 > 0.05"),
        (Drift(5, 0.005, 0, 0.0, 2.5), "new-item error ratio 2.5 > 1.5"),
        (
            Drift(300, 0.3, 60, 0.06, 2.5),
            "new items 0.3 > 0.2; changed items 0.06 > 0.05; new-item error ratio 2.5 > 1.5",
        ),
    ],
)
def test_auto_rebuilds_and_names_every_bound_it_crossed(drift, reason):
    decision = decide("auto", drift, BOUNDS, settings_differ=False)
    assert not decision.refresh and decision.reason == reason


def test_changed_settings_rebuild_even_without_drift():
    decision = decide("auto", CALM, BOUNDS, settings_differ=True)
    assert not decision.refresh and decision.reason == "settings differ from the published build"


def test_the_modes_override_the_drift():
    wild = Drift(900, 0.9, 900, 0.9, 9.0)
    assert decide("refresh", wild, BOUNDS, settings_differ=True).refresh
    assert decide("rebuild", CALM, BOUNDS, settings_differ=False).reason == "mode rebuild"
    assert decide("auto", None, BOUNDS, settings_differ=False).reason == "no published build"
    with pytest.raises(ValueError, match="unknown mode 'sometimes'; choose one of auto, refresh, rebuild"):
        decide("sometimes", CALM, BOUNDS, settings_differ=False)  # type: ignore[arg-type]


def test_same_inputs_compares_every_current_key():
    recorded = {"embedding_model": "m", "embeddings_fingerprint": "42", "config": {"seed": 0}, "items": 7}
    assert same_inputs(recorded, {"embedding_model": "m", "embeddings_fingerprint": "42", "config": {"seed": 0}})
    assert not same_inputs(recorded, {"embedding_model": "m", "embeddings_fingerprint": "43", "config": {"seed": 0}})
    assert not same_inputs(recorded, {"embedding_model": "m", "config": {"seed": 1}})
    assert not same_inputs({}, {"embedding_model": "m"})


def test_the_build_id_is_method_utc_second_and_run():
    started = dt.datetime(2025, 3, 1, 23, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert build_id("rq-kmeans", started, "0123456789abcdef") == "rq-kmeans-20250302T013005-01234567"
