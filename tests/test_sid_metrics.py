"""SID distribution metrics: Gini by hand, and every count against a plain Python recount."""

from collections import Counter

import numpy as np
import pytest

from quality.sid_metrics import distribution_metrics, gini
from sid_index.levels import level_metrics


def _forge_gini(counts) -> float:
    """FORGE's `calculate_gini.py` (SID_generation/scripts/gini_coefficient.md), fed its `cnt$$||$$cnt_freq` rows."""
    values, freq = np.unique(np.asarray(counts), return_counts=True)
    summary = np.stack([values, freq], axis=1)
    n_sids = np.sum(summary[:, 1])
    total_dot_product, cumulative_freq_before = 0, 0
    for j, n_j in summary:
        first_term = n_sids - cumulative_freq_before
        last_term = n_sids - cumulative_freq_before - n_j + 1
        total_dot_product += j * ((first_term + last_term) * n_j // 2)
        cumulative_freq_before += n_j
    return (n_sids + 1) / n_sids - (2 * total_dot_product / (n_sids * np.dot(summary[:, 0], summary[:, 1])))


@pytest.mark.parametrize(
    "counts",
    [
        [1] * 10,
        [10],
        [7],
        [2, 1, 1],
        [5, 5, 1, 3, 3, 3, 9, 1, 1, 1, 40],
        list(range(1, 200)),
        [1] * 9000 + [2] * 500 + [977],
    ],
)
def test_gini_equals_forges_script(counts):
    assert gini(np.array(counts)) == pytest.approx(_forge_gini(counts), rel=1e-12, abs=1e-12)


def test_gini_hand_computed_cases():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([10])) == pytest.approx(0.0)  # one occupied SID: nothing unequal among occupied SIDs
    # padded to one slot per item: one SID holding all N items gives (N - 1) / N
    assert gini(np.array([10]), 10) == pytest.approx(9 / 10)
    assert gini(np.array([7]), 7) == pytest.approx(6 / 7)
    # x = 1, 1, 2 ascending: 2*(1*1 + 1*2 + 2*3)/(3*4) - 4/3
    assert gini(np.array([2, 1, 1])) == pytest.approx(2 * (1 + 2 + 6) / 12 - 4 / 3)
    # 4 items on SIDs of sizes 2, 1, 1 plus one empty slot: x = 0,1,1,2 -> 2*(0*1+1*2+1*3+2*4)/(4*4) - 5/4
    assert gini(np.array([2, 1, 1]), 4) == pytest.approx(2 * (2 + 3 + 8) / 16 - 5 / 4)
    with pytest.raises(ValueError, match="population 2"):
        gini(np.array([2, 1, 1]), 2)


def test_distribution_metrics_match_a_python_recount():
    rng = np.random.default_rng(0)
    sizes = [4, 8, 16]
    codes = np.stack([rng.integers(0, 4, 2000), rng.integers(0, 3, 2000), rng.zipf(1.8, 2000) % 16], 1)
    m = distribution_metrics(codes, sizes)
    sids = Counter(map(tuple, codes.tolist()))
    shared = sum(c for c in sids.values() if c > 1)
    assert m["occupied_sids"] == len(sids)
    values = np.array(sorted(sids.values()), dtype=float)
    pairwise = np.abs(values[:, None] - values[None, :]).sum() / (2 * len(values) ** 2 * values.mean())
    assert m["gini"] == pytest.approx(pairwise)
    padded = np.concatenate([np.zeros(2000 - len(values)), values])
    assert m["gini_padded_to_items"] == pytest.approx(
        np.abs(padded[:, None] - padded[None, :]).sum() / (2 * 2000**2 * padded.mean())
    )
    assert m["collision_rate"] == pytest.approx(shared / 2000)
    assert m["unique_sid_rate"] == pytest.approx(len(sids) / 2000)
    assert m["max_items_per_sid"] == max(sids.values())
    assert m["mean_items_per_sid"] == pytest.approx(2000 / len(sids))
    assert m["utilisation_per_level"] == pytest.approx([1.0, 3 / 8, len(set(codes[:, 2])) / 16])
    assert m["dead_codes_per_level"][1] == 5


def test_level_entropy_and_perplexity():
    uniform = level_metrics(np.repeat(np.arange(8), 5), 8)
    assert uniform["entropy_bits"] == pytest.approx(3.0) and uniform["perplexity"] == pytest.approx(8.0)
    collapsed = level_metrics(np.zeros(40, dtype=np.int64), 8)
    assert collapsed["perplexity"] == pytest.approx(1.0) and collapsed["dead_codes"] == 7
