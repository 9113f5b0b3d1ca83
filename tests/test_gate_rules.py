"""The quality gate's rules on literal metrics: each threshold decides exactly its own check."""

import pytest

from quality.gate import Thresholds, evaluate

GOOD = {
    "sizes": [8, 8, 8],
    "gini": 0.4,
    "collision_rate": 0.1,
    "perplexity_per_level": [6.0, 5.0, 4.0],
    "utilisation_per_level": [1.0, 0.9, 0.8],
    "embedding_hitrate": 0.2,
    "embedding_hitrate_raw": 0.5,
}


def test_a_good_build_passes_every_check_and_reports_its_limits():
    result = evaluate(GOOD, Thresholds())
    assert result.passed and not result.failed and len(result.checks) == 5
    assert result.limits == {
        "max_gini": 0.95,
        "max_collision_rate": 0.95,
        "perplexity_floor": [2.0, 2.0, 2.0],
        "min_level_utilisation": 0.25,
        "min_hitrate": pytest.approx(0.15),
    }


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"gini": 0.96}, "gini <= 0.95"),
        ({"collision_rate": 0.99}, "collision_rate <= 0.95"),
        ({"perplexity_per_level": [6.0, 5.0, 1.0]}, "every level's raw perplexity >= max(2.0, 0.1 x its size)"),
        ({"utilisation_per_level": [1.0, 0.2, 0.8]}, "every level's raw utilisation >= 0.25"),
        ({"embedding_hitrate": 0.1}, "embedding_hitrate >= 0.3 x raw"),
    ],
)
def test_each_rule_fails_alone(change, failed):
    result = evaluate({**GOOD, **change}, Thresholds())
    assert not result.passed and result.failed == [failed]


def test_the_perplexity_floor_grows_with_the_level_size():
    thresholds = Thresholds(min_level_perplexity=2.0, min_level_perplexity_share=0.1)
    assert thresholds.perplexity_floors([8, 256]) == [2.0, pytest.approx(25.6)]
    result = evaluate({**GOOD, "sizes": [8, 256, 8], "perplexity_per_level": [6.0, 20.0, 4.0]}, thresholds)
    assert result.failed == ["every level's raw perplexity >= max(2.0, 0.1 x its size)"]


def test_negative_thresholds_are_refused():
    with pytest.raises(ValueError, match="max_gini must not be negative"):
        Thresholds(max_gini=-0.1)
